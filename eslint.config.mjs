// Lint rules. The workflow sandbox boundary is enforced here: files under src/workflows may
// import only @temporalio/workflow and src/shared (activity modules as types only), and
// src/shared must stay importable from the sandbox (no Node builtins, no Node-side SDKs).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`]);
const sandboxForbidden = [
  ...nodeBuiltins.map((name) => ({ name, message: 'Workflow code runs in a deterministic sandbox: no Node builtins.' })),
  ...['pino', '@temporalio/activity', '@temporalio/client', '@temporalio/worker', '@temporalio/testing', '@temporalio/common'].map((name) => ({
    name,
    message: 'Not allowed in workflow code: use @temporalio/workflow (log, sleep, proxyActivities).',
  })),
];

export default tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', '.data/**', '.artifacts/**', 'dist/**', 'lib/**', 'bench/.work/**', 'examples/python/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test runs these itself; everything else that returns a promise must be awaited.
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: { require: 'readonly', module: 'writable', process: 'readonly', console: 'readonly', __dirname: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The report page's script runs in a browser (src/report/html.ts inlines it, with uPlot).
    files: ['assets/report/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: { window: 'readonly', document: 'readonly', uPlot: 'readonly', IntersectionObserver: 'readonly' },
    },
  },
  {
    files: ['src/shared/**/*.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { paths: sandboxForbidden }] },
  },
  {
    files: ['src/workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            ...sandboxForbidden,
            ...['yaml', 'cli-progress'].map((name) => ({ name, message: 'Workflow code may import only @temporalio/workflow and src/shared.' })),
          ],
          patterns: [
            { group: ['**/activities', '**/activities/**'], allowTypeImports: true, message: 'Workflows import activity types only (proxyActivities<Activities>).' },
            { group: ['**/cli', '**/cli/**', '**/worker', '**/client', '**/logging', '**/plugin'], message: 'Workflow code may import only @temporalio/workflow and src/shared.' },
          ],
        },
      ],
    },
  },
);
