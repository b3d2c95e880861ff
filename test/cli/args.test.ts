/**
 * The one CLI parser (src/cli/args.ts, node:util parseArgs behind CommandSpec/ParsedArgs) and its
 * generated help, without a server: `experiments --help` and every command's help, run as a real
 * child process of bin/experiments.js (the compiled lib/, as users run it), list every flag.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { COMMANDS, findCommand, parseArgs, type CommandSpec } from '../../src/cli/args';
import { UsageError } from '../../src/cli/errors';
import { configuredUiBase } from '../../src/cli/connect';

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'experiments.js');

function experiments(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, TEMPORAL_ADDRESS: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const flagsOf = (spec: CommandSpec) => Object.keys(spec.options).map((name) => `--${name}`);
const spec = (name: string) => findCommand(name) as CommandSpec;

test('`experiments --help` lists every command with every one of its flags', () => {
  const r = experiments(['--help']);
  assert.equal(r.code, 0, r.stderr);
  for (const c of COMMANDS) {
    assert.ok(r.stdout.includes(`  ${c.name} `), `command ${c.name} listed`);
    for (const flag of flagsOf(c)) assert.match(r.stdout, new RegExp(`experiments ${c.name} .*\\[${flag}[ \\]]`), `${c.name} ${flag}`);
  }
});

test("every command's --help (and `help <command>`) lists all of its flags", () => {
  for (const c of COMMANDS.filter((c) => c.name !== 'help')) {
    const words = c.name.split(' ');
    for (const args of [[...words, '--help'], ['help', ...words]]) {
      const r = experiments(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: experiments ${c.name}`), args.join(' '));
      for (const flag of [...flagsOf(c), '--help']) assert.match(r.stdout, new RegExp(`^  (-\\w, )?${flag}\\b`, 'm'), `${args.join(' ')}: ${flag}`);
    }
  }
});

test('parsing: values, inline values, short flags, booleans, -- and variadic positionals', () => {
  assert.deepEqual(parseArgs(spec('approve'), ['s1', '--by', 'ann', '--note=a b', '--key', '-']), {
    positionals: ['s1'],
    options: { by: 'ann', note: 'a b', key: '-' },
    help: false,
  });
  assert.deepEqual(parseArgs(spec('history export'), ['wf', '-o', 'out.json']).options, { out: 'out.json' });
  assert.deepEqual(parseArgs(spec('status'), ['--json', '--', '--odd-id']), { positionals: ['--odd-id'], options: { json: true }, help: false });
  assert.deepEqual(parseArgs(spec('replay'), ['a.json', 'dir', '--workflows-path', 'm.js']).positionals, ['a.json', 'dir']);
  assert.equal(parseArgs(spec('run'), ['-h']).help, true, 'help needs no positionals');
  assert.equal(parseArgs(spec('approve'), ['s', '--by=--x']).options.by, '--x', 'an inline value may start with --');
});

test('mistakes: one UsageError naming the command, the flag and the fix', () => {
  const cases: [string, string[], RegExp][] = [
    ['run', ['f', '--aprove-as', 'x'], /^unknown option --aprove-as for `experiments run` \(see `experiments run --help`\)$/],
    ['worker', ['-z'], /^unknown option -z for `experiments worker`/],
    ['approve', ['s', '--by'], /^option --by of `experiments approve` needs a value: --by NAME$/],
    ['approve', ['s', '--by', '--note', 'x'], /^option --by of `experiments approve` needs a value: --by NAME$/],
    ['status', ['s', '--json=yes'], /^option --json of `experiments status` takes no value$/],
    ['cancel', ['s', '--reason', 'a', '--reason', 'b'], /^option --reason of `experiments cancel` was given twice$/],
    ['status', [], /^`experiments status` needs ID \(usage: experiments status ID/],
    ['submit', ['s'], /^`experiments submit` needs FILE/],
    ['status', ['a', 'b'], /^unexpected argument "b" for `experiments status`/],
    ['replay', ['--workflows-path', 'm'], /^`experiments replay` needs FILE\|DIR\.\.\./],
    ['status', ['s', '--constructor', 'x'], /^unknown option --constructor/],
  ];
  for (const [name, argv, pattern] of cases) {
    assert.throws(() => parseArgs(spec(name), argv), (err: unknown) => err instanceof UsageError && pattern.test(err.message), `${name} ${argv.join(' ')}`);
  }
});

test('the Web UI link is configured, never guessed', () => {
  assert.equal(configuredUiBase(undefined, {}), undefined, 'nothing configured: no link');
  assert.equal(configuredUiBase(undefined, { TEMPORAL_UI_URL: 'https://ui.example.com/' }), 'https://ui.example.com');
  assert.equal(configuredUiBase('http://localhost:9000', { TEMPORAL_UI_URL: 'https://ui.example.com' }), 'http://localhost:9000', 'the flag wins');
  assert.throws(() => configuredUiBase('localhost:8233', {}), /^UsageError: --ui-url: expected an http\(s\) URL such as http:\/\/localhost:8233, received "localhost:8233"$/);
  assert.throws(() => configuredUiBase(undefined, { TEMPORAL_UI_URL: 'ftp://x' }), /^UsageError: TEMPORAL_UI_URL: expected an http\(s\) URL/);
});
