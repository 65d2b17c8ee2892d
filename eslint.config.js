// @ts-check
// Lint for every workspace, sources and tests, with type information (tsconfig.eslint.json; the
// packages' own dist/ must be built first: `npx tsc -b`, as .ci/run does).
//
// Base: typescript-eslint's recommended-type-checked. The rules that guard control paths are errors:
// a dropped promise is how a control operation hangs (no-floating-promises), an async callback where
// the caller expects void drops its rejection (no-misused-promises), awaiting a non-promise hides a
// missing call (await-thenable). Turned off, with the count each found when lint was introduced:
// - require-await (151): async methods that do not await implement promise-returning interfaces;
// - no-unsafe-* (239): `any` from JSON.parse and untyped libraries; outside input is validated with zod
//   at the boundary, the rest is tests and fakes reading their own JSON;
// - no-unnecessary-type-assertion (130): style only; `eslint --fix` can apply it once, after the merge;
// - no-base-to-string (31), unbound-method (9), no-this-alias (2): reviewed (strings built from
//   zod-checked or already-string values; functions that do not use `this`, except the SDK's captured
//   open(), now called on its definition);
// - no-useless-assignment (10), no-unused-vars (44): tidiness, left for a sweep that edits no one's
//   files in flight.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/coverage/**', '.tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: { ...globals.node },
      parserOptions: { project: ['./tsconfig.eslint.json'], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // Promise.all over `cond ? promise : undefined` is intended (undefined settles at once).
      '@typescript-eslint/await-thenable': ['error', { allowMixedPromiseArrays: true }],
      // Re-throwing or re-rejecting what a catch or an abort signal handed over (typed unknown/any) is fine.
      '@typescript-eslint/only-throw-error': ['error', { allowThrowingUnknown: true, allowThrowingAny: true }],
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true, allowThrowingAny: true }],
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      '@typescript-eslint/no-base-to-string': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-this-alias': 'off',
      '@typescript-eslint/no-unused-vars': 'off',
      'no-useless-assignment': 'off',
    },
  },
  // Tests read JSON answers loosely typed; what they read is asserted by value.
  {
    // The dashboard's browser code: its own tsconfig (DOM, JSX for Preact, bundler resolution).
    files: ['ui/web/**/*.ts', 'ui/web/**/*.tsx'],
    languageOptions: {
      globals: { ...globals.browser },
      parserOptions: { project: ['./ui/web/tsconfig.json'], tsconfigRootDir: import.meta.dirname },
    },
  },
  { files: ['**/test/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  // Plain JavaScript (test plugins, scripts): no type information.
  { files: ['**/*.js', '**/*.mjs', 'ui/web/vite.config.ts'], ...tseslint.configs.disableTypeChecked },
);
