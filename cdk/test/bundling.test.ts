// The function assets, built through cargo-lambda-cdk's local bundling with a
// stand-in `cargo` (no Rust build): each asset is the step's `bootstrap` with
// the repository's config/ beside it, built for arm64 from the workspace.

import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT, resourceWhere, synthesize } from './helpers';

const FUNCTIONS = ['check-sources', 'download-package', 'record-metadata', 'build-index', 'publish'];

const work = mkdtempSync(path.join(tmpdir(), 'pkgrelay-cdk-bundling-'));
const log = path.join(work, 'cargo.log');
const bin = path.join(work, 'bin');
const outdir = path.join(work, 'cdk.out');

// `cargo lambda --version` says it is installed; `cargo lambda build
// --lambda-dir DIR ... --bin NAME` writes DIR/bootstrap naming the binary.
const fakeCargo = `#!/usr/bin/env bash
echo "$PWD :: $*" >> "${log}"
if [ "$1" = lambda ] && [ "$2" = --version ]; then echo "cargo-lambda (stand-in)"; exit 0; fi
[ "$1" = lambda ] && [ "$2" = build ] || { echo "unexpected: cargo $*" >&2; exit 2; }
dir= ; name=
while [ $# -gt 0 ]; do
  case "$1" in --lambda-dir) dir="$2"; shift ;; --bin) name="$2"; shift ;; esac
  shift
done
mkdir -p "$dir" && printf '#!/bin/sh\\n# %s\\n' "$name" > "$dir/bootstrap"
`;

let synthesized: ReturnType<typeof synthesize>;
const savedPath = process.env.PATH;

beforeAll(() => {
  require('node:fs').mkdirSync(bin);
  writeFileSync(path.join(bin, 'cargo'), fakeCargo);
  chmodSync(path.join(bin, 'cargo'), 0o755);
  process.env.PATH = `${bin}${path.delimiter}${savedPath}`;
  // Bundle this stack (the other tests skip bundling), into a scratch outdir.
  synthesized = synthesize('dev', { outdir, context: { 'aws:cdk:bundling-stacks': ['**'] } });
});

afterAll(() => {
  process.env.PATH = savedPath;
  rmSync(work, { recursive: true, force: true });
});

function configFiles(dir: string, rel = ''): string[] {
  return readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? configFiles(dir, path.join(rel, e.name)) : [path.join(rel, e.name)],
  );
}

test('cargo lambda builds each step from the workspace, arm64, release, flattened to bootstrap', () => {
  const calls = readFileSync(log, 'utf8').trim().split('\n').filter((l) => l.includes(':: lambda build'));
  expect(calls).toHaveLength(FUNCTIONS.length);
  for (const name of FUNCTIONS) {
    const call = calls.find((c) => c.includes(`--bin ${name} `))!;
    expect(call).toBeDefined();
    const [cwd, args] = call.split(' :: ');
    expect(cwd).toBe(REPO_ROOT);
    expect(args).toMatch(/--release/);
    expect(args).toMatch(/--arm64/);
    expect(args).toMatch(new RegExp(`--flatten ${name}( |$)`));
    expect(args).toMatch(new RegExp(`--package ${name}( |$)`));
  }
});

test.each(FUNCTIONS)('the %s asset holds bootstrap and the whole config/ directory', (name) => {
  const json = synthesized.template.toJSON();
  const [, fn] = resourceWhere(synthesized.template, 'AWS::Lambda::Function', 'FunctionName', `pkgrelay-dev-${name}`);
  const assetPath = fn.Metadata?.['aws:asset:path'];
  expect(typeof assetPath).toBe('string');
  const asset = path.join(outdir, assetPath);
  expect(readFileSync(path.join(asset, 'bootstrap'), 'utf8')).toContain(`# ${name}`);
  const repoConfig = path.join(REPO_ROOT, 'config');
  const bundled = path.join(asset, 'config');
  expect(existsSync(path.join(bundled, 'repository.yaml'))).toBe(true);
  expect(configFiles(bundled).sort()).toEqual(configFiles(repoConfig).sort());
  for (const f of configFiles(repoConfig)) {
    expect(readFileSync(path.join(bundled, f), 'utf8')).toBe(readFileSync(path.join(repoConfig, f), 'utf8'));
  }
  expect(json.Resources).toBeDefined();
});
