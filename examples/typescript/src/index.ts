// A tiny typed client of the usergraph API: the README's round trip
// (register → login → me → refreshToken → logout), one line per step.
//
//   node dist/index.js [URL]      URL defaults to $API_URL, then
//                                 http://127.0.0.1:8080/graphql
//
// Exits non-zero with a clear message on an HTTP error, a network error or
// any GraphQL error (its `extensions.code` and message).
import { randomBytes } from 'node:crypto';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import type { MeQuery } from './gql/graphql.js';
import {
  LoginDocument,
  LogoutDocument,
  MeDocument,
  RefreshTokenDocument,
  RegisterDocument,
} from './operations.js';

// Compile-time proof that `DateTime` became exactly `string` (RFC 3339 text),
// not `any`: this line stops compiling if the scalar mapping changes.
type Exactly<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const createdAtIsString: Exactly<NonNullable<MeQuery['me']>['createdAt'], string> = true;
void createdAtIsString;

const DEFAULT_URL = 'http://127.0.0.1:8080/graphql';
const TIMEOUT_MS = 15_000;

interface GraphQLErrorBody {
  message: string;
  path?: ReadonlyArray<string | number>;
  extensions?: { code?: string; [key: string]: unknown };
}

interface GraphQLResponse<TResult> {
  data?: TResult | null;
  errors?: GraphQLErrorBody[];
}

/** Any failure of a step: printed as-is, then the process exits 1. */
class ClientError extends Error {}

/**
 * Sends one operation. The result and the variables are typed by the
 * generated document, so `execute(MeDocument, {})` resolves to `MeQuery`.
 */
async function execute<TResult, TVariables>(
  url: string,
  document: TypedDocumentNode<TResult, TVariables>,
  variables: TVariables,
  accessToken?: string,
): Promise<TResult> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/graphql-response+json, application/json',
  };
  if (accessToken !== undefined) {
    headers.authorization = `Bearer ${accessToken}`;
  }

  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query: print(document), variables }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    const message = err instanceof Error ? err.message : String(err);
    throw new ClientError(`cannot reach ${url}: ${message}${cause}`);
  }

  const text = await response.text();
  let body: GraphQLResponse<TResult> | undefined;
  try {
    body = JSON.parse(text) as GraphQLResponse<TResult>;
  } catch {
    body = undefined;
  }

  // A GraphQL error first: it says more than the status (a
  // `application/graphql-response+json` server may answer 4xx with one).
  const first = body?.errors?.[0];
  if (first !== undefined) {
    const code = first.extensions?.code ?? 'NO_CODE';
    const path = first.path !== undefined ? ` at ${first.path.join('.')}` : '';
    throw new ClientError(`GraphQL error ${code}${path}: ${first.message}`);
  }
  if (!response.ok) {
    const snippet = text.length > 200 ? `${text.slice(0, 200)}…` : text;
    throw new ClientError(`HTTP ${response.status} ${response.statusText} from ${url}: ${snippet}`);
  }
  if (body === undefined) {
    throw new ClientError(`HTTP ${response.status} from ${url}: the body is not JSON`);
  }
  if (body.data === undefined || body.data === null) {
    throw new ClientError(`HTTP ${response.status} from ${url}: no data and no errors`);
  }
  return body.data;
}

async function main(): Promise<void> {
  const url = process.argv[2] ?? process.env.API_URL ?? DEFAULT_URL;
  const email = `ts-example-${randomBytes(6).toString('hex')}@example.com`;
  const password = 'correct horse battery staple 42';
  console.log(`API: ${url}`);

  const { register } = await execute(url, RegisterDocument, {
    input: { email, password },
  });
  console.log(`register: ok, user ${register.user.id} <${register.user.email}>`);

  const { login } = await execute(url, LoginDocument, { input: { email, password } });
  console.log(`login: ok, access token expires in ${login.expiresIn}s`);

  const { me } = await execute(url, MeDocument, {}, login.accessToken);
  if (me === null || me === undefined) {
    throw new ClientError('me: null although a bearer token was sent');
  }
  // `DateTime` is mapped to `string` in codegen.ts: RFC 3339 text such as
  // "2024-05-01T12:34:56.789Z". This annotation is checked by tsc.
  const createdAt: string = me.createdAt;
  const roles = me.roles.map((role) => role.name).join(',') || '-';
  const permissions = me.permissions.join(',') || '-';
  console.log(`me: ${me.email} roles=${roles} permissions=${permissions} createdAt=${createdAt}`);
  if (me.email !== register.user.email) {
    throw new ClientError(`me: expected ${register.user.email}, got ${me.email}`);
  }

  const { refreshToken } = await execute(url, RefreshTokenDocument, {
    token: login.refreshToken,
  });
  if (refreshToken.refreshToken === login.refreshToken) {
    throw new ClientError('refreshToken: the refresh token was not rotated');
  }
  console.log(`refreshToken: ok, rotated; access token expires in ${refreshToken.expiresIn}s`);

  const { logout } = await execute(url, LogoutDocument, {}, refreshToken.accessToken);
  if (!logout) {
    throw new ClientError('logout: returned false');
  }
  console.log('logout: ok');
  console.log('round trip: ok');
}

try {
  await main();
} catch (err) {
  if (err instanceof ClientError) {
    console.error(`error: ${err.message}`);
  } else {
    console.error('error: unexpected failure:', err);
  }
  process.exitCode = 1;
}
