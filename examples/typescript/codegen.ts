import type { CodegenConfig } from '@graphql-codegen/cli';

// The schema: the repository's SDL by default, or a live server by
// introspection when SCHEMA_URL is set (e.g. http://127.0.0.1:8080/graphql).
const schema = process.env.SCHEMA_URL || '../../schema.graphql';

const config: CodegenConfig = {
  schema,
  documents: ['src/**/*.ts', '!src/gql/**/*'],
  ignoreNoDocuments: false,
  emitLegacyCommonJSImports: false,
  generates: {
    'src/gql/': {
      preset: 'client',
      presetConfig: {
        // No fragment masking: the operations here select plain fields.
        fragmentMasking: false,
      },
      config: {
        // DateTime is RFC 3339 text on the wire. strictScalars makes any new
        // custom scalar without a mapping here fail codegen instead of
        // silently becoming `any`.
        strictScalars: true,
        scalars: {
          DateTime: 'string',
          JSON: 'unknown',
        },
        useTypeImports: true,
        enumsAsTypes: true,
      },
    },
  },
};

export default config;
