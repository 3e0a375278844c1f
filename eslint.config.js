// ESLint for src, workers, bench and test: correctness rules, type-aware where
// the types catch real bugs (promises nobody handles, async functions where a
// callback's result is ignored). Layout is Prettier's (.prettierrc.json).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/', 'build/', 'node_modules/'] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A leading underscore marks a parameter or binding kept for its position or to drop a field.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // The addon's exports (src/native.ts) and the application's handlers are plain functions,
      // declared with method syntax and passed around detached on purpose.
      '@typescript-eslint/unbound-method': 'off',
      // async without await is how an object implements an interface whose methods return promises.
      '@typescript-eslint/require-await': 'off',
      // An exhaustive else still prints what a hostile peer sent, though the types call it `never`.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowNever: true }],
    },
  },
  {
    // Plain JavaScript run by Node before anything is compiled: no types to check.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly' },
    },
  },
);
