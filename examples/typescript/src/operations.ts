// The operations of the README's round trip. `graphql()` comes from the
// generated client preset (src/gql/, produced by `npm run codegen`): each call
// returns a TypedDocumentNode whose result and variables types are derived
// from the schema, so a typo in a field name fails codegen, and a misuse of a
// result fails `tsc --strict`.
import { graphql } from './gql/index.js';

export const RegisterDocument = graphql(`
  mutation Register($input: RegisterInput!) {
    register(input: $input) {
      accessToken
      refreshToken
      expiresIn
      user {
        id
        email
      }
    }
  }
`);

export const LoginDocument = graphql(`
  mutation Login($input: LoginInput!) {
    login(input: $input) {
      accessToken
      refreshToken
      expiresIn
    }
  }
`);

export const MeDocument = graphql(`
  query Me {
    me {
      id
      email
      displayName
      roles {
        name
      }
      permissions
      createdAt
    }
  }
`);

export const RefreshTokenDocument = graphql(`
  mutation RefreshToken($token: String!) {
    refreshToken(token: $token) {
      accessToken
      refreshToken
      expiresIn
    }
  }
`);

export const LogoutDocument = graphql(`
  mutation Logout {
    logout
  }
`);
