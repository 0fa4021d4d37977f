// The function assets, built through cargo-lambda-cdk's local bundling with a
// stand-in `cargo` (no Rust build): each asset is the step's `bootstrap` with
// the repository's config/ beside it, built for arm64 from the workspace.
// The app runs in a child process (bin/pkgrelay.ts, as the CLI runs it), so
// that the stand-in is on the PATH cargo-lambda-cdk looks at.

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CDK_DIR, Json, REPO_ROOT } from './helpers';

const FUNCTIONS = ['check-sources', 'download-package', 'record-metadata', 'build-index', 'publish'];
/** The media sync's (pkgrelay-dev-media, lib/media-stack.ts): bundled the same way. */
const MEDIA_FUNCTIONS = ['authenticate', 'list-media', 'download-media', 'summarize'];

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

let template: Json;
let mediaTemplate: Json;

beforeAll(() => {
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'cargo'), fakeCargo);
  chmodSync(path.join(bin, 'cargo'), 0o755);
  const cdkJson = JSON.parse(readFileSync(path.join(CDK_DIR, 'cdk.json'), 'utf8'));
  const run = spawnSync(path.join(CDK_DIR, 'node_modules', '.bin', 'tsx'), ['bin/pkgrelay.ts'], {
    cwd: CDK_DIR,
    encoding: 'utf8',
    env: {
      ...process.env,
      PATH: `${bin}${path.delimiter}${process.env.PATH}`,
      CDK_OUTDIR: outdir,
      // What the CLI passes: cdk.json's context, -c env=dev, asset paths in metadata, bundle everything.
      CDK_CONTEXT_JSON: JSON.stringify({
        ...cdkJson.context,
        env: 'dev',
        'aws:cdk:enable-asset-metadata': true,
        'aws:cdk:bundling-stacks': ['**'],
      }),
    },
  });
  if (run.status !== 0) {
    throw new Error(`bin/pkgrelay.ts failed (${run.status}):\n${run.stdout}\n${run.stderr}`);
  }
  template = JSON.parse(readFileSync(path.join(outdir, 'pkgrelay-dev.template.json'), 'utf8'));
  mediaTemplate = JSON.parse(readFileSync(path.join(outdir, 'pkgrelay-dev-media.template.json'), 'utf8'));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function configFiles(dir: string, rel = ''): string[] {
  return readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? configFiles(dir, path.join(rel, e.name)) : [path.join(rel, e.name)],
  );
}

test('cargo lambda builds each step (and the Slack notifier dev deploys, and the media functions) from the workspace, arm64, release, flattened to bootstrap', () => {
  const calls = readFileSync(log, 'utf8').trim().split('\n').filter((l) => l.includes(':: lambda build'));
  expect(calls).toHaveLength(FUNCTIONS.length + 1 + MEDIA_FUNCTIONS.length);
  for (const name of [...FUNCTIONS, 'notify-slack', ...MEDIA_FUNCTIONS]) {
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

test.each([...FUNCTIONS, ...MEDIA_FUNCTIONS])('the %s asset holds bootstrap and the whole config/ directory', (name) => {
  const t = MEDIA_FUNCTIONS.includes(name) ? mediaTemplate : template;
  const fn = Object.values<Json>(t.Resources).find((r) => r.Properties?.FunctionName === `pkgrelay-dev-${name}`);
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
});
