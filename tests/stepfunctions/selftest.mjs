#!/usr/bin/env node
// Self-test of run-execution.mjs and statemachine/pipeline.asl.json:
//   node tests/stepfunctions/selftest.mjs
// Shell-script stand-ins for the five function binaries (in a temp dir) and a
// small HTTP server standing in for SNS (127.0.0.1, port 0) drive the real
// definition through the real harness (run as a child process, as the tests
// run it). Exit status non-zero on any failed check.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { PLACEHOLDERS, SNS_PUBLISH, allStates, classifyResource } from './run-execution.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const runner = path.join(here, 'run-execution.mjs');
const definitionPath = path.resolve(here, '../../statemachine/pipeline.asl.json');
const REGION = 'eu-west-1';

let failures = 0;
let checks = 0;
const tempDirs = [];
function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}
function check(ok, what, detail) {
  checks += 1;
  if (ok) {
    process.stdout.write(`  ok   ${what}\n`);
  } else {
    failures += 1;
    process.stdout.write(`  FAIL ${what}${detail === undefined ? '' : `\n       ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`}\n`);
  }
}

// ---------------------------------------------------------------- stand-ins
// Their behaviour depends on SELFTEST_SCENARIO; each call's stdin is kept in
// $SELFTEST_DIR/calls/<function>.<random> for the checks.
const CANDIDATES = [
  { package: 'kiro', version: '0.7.45', architecture: 'amd64', source_type: 'external_download', url: 'https://example.invalid/kiro_0.7.45_amd64.deb', expected_sha256: 'ab'.repeat(32) },
  { package: 'broken', version: '1.0', architecture: 'amd64', source_type: 'external_download', url: 'https://example.invalid/broken_1.0_amd64.deb' },
];
const SOURCE_FAILURE = 'kiro-cli: HTTP 503 from "https://example.invalid/releases"\nretry later \\ maybe';
const RESPONSES = {
  'check-sources.default.json': { candidates: CANDIDATES, already_processed: 1, failures: [{ package: 'kiro-cli', error: SOURCE_FAILURE }], force_rebuild: false, refresh_due: false, proceed: true },
  'check-sources.nothing.json': { candidates: [], already_processed: 2, failures: [], force_rebuild: false, refresh_due: false, proceed: false },
  'check-sources.buildfail.json': { candidates: [], already_processed: 0, failures: [], force_rebuild: true, refresh_due: false, proceed: true },
  'check-sources.crash.json': { candidates: [{ ...CANDIDATES[0], package: 'crashy' }], already_processed: 0, failures: [], force_rebuild: false, refresh_due: false, proceed: true },
  'staged.json': { entry: { package_id: 'kiro#0.7.45#amd64', package_name: 'kiro', version: '0.7.45', architecture: 'amd64', filename: 'pool/main/k/kiro/kiro_0.7.45_amd64.deb' } },
  'recorded.json': { package_id: 'kiro#0.7.45#amd64', outcome: 'inserted' },
  'index.json': { generation: 7, manifest_key: 'generations/stable/00000007/manifest.json', packages: 1 },
  'published.json': { status: 'published', generation: 7, published_generation: 7, url: 'https://example.invalid/', packages: 1, valid_until: 'Sat, 29 Nov 2025 10:00:00 UTC' },
  'transient.json': { errorType: 'TransientError', errorMessage: 'connection reset by upstream' },
  'invalid.json': { errorType: 'InvalidPackage', errorMessage: 'broken 1.0 amd64: not a Debian package' },
  'buildfail.json': { errorType: 'InternalError', errorMessage: 'store unreachable: table "packages"' },
};

const PRELUDE = `#!/bin/sh
set -eu
[ "\${1:-}" = "--invoke" ] || { echo "usage: $0 --invoke" >&2; exit 64; }
input=$(cat)
printf '%s' "$input" > "$(mktemp "$SELFTEST_DIR/calls/$(basename "$0").XXXXXX")"
r="$SELFTEST_DIR/responses"
`;
const SCRIPTS = {
  'check-sources': `${PRELUDE}
# The environment must reach the function (tables and buckets come from it).
if [ "\${SELFTEST_TOKEN:-}" != "token-$SELFTEST_SCENARIO" ]; then
  echo '{"errorType":"InternalError","errorMessage":"SELFTEST_TOKEN did not reach the function"}'; exit 1
fi
echo "checking sources" >&2
cat "$r/check-sources.$SELFTEST_SCENARIO.json"
`,
  'download-package': `${PRELUDE}
case "$input" in
  *'"package":"broken"'*) echo "not a .deb" >&2; cat "$r/invalid.json"; exit 1 ;;
  *'"package":"crashy"'*) echo "thread 'main' panicked at src/main.rs:1:1" >&2; exit 101 ;;
esac
# Fails once with TransientError, then succeeds.
if mkdir "$SELFTEST_DIR/download-failed-once" 2>/dev/null; then cat "$r/transient.json"; exit 1; fi
cat "$r/staged.json"
`,
  'record-metadata': `${PRELUDE}
case "$input" in *'"entry"'*) ;; *) echo '{"errorType":"InternalError","errorMessage":"no entry"}'; exit 1 ;; esac
cat "$r/recorded.json"
`,
  'build-index': `${PRELUDE}
if [ "$SELFTEST_SCENARIO" = buildfail ]; then cat "$r/buildfail.json"; exit 1; fi
cat "$r/index.json"
`,
  publish: `${PRELUDE}
cat "$r/published.json"
`,
};

function makeBinDir(root) {
  const bin = path.join(root, 'bin');
  fs.mkdirSync(bin);
  for (const [name, body] of Object.entries(SCRIPTS)) {
    fs.writeFileSync(path.join(bin, name), body, { mode: 0o755 });
  }
  return bin;
}

// ---------------------------------------------------------------- SNS stand-in
function startSns() {
  const published = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      if (req.method !== 'POST' || req.url !== '/' || form.get('Action') !== 'Publish') {
        res.writeHead(400, { 'content-type': 'text/xml' });
        res.end('<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>unexpected request</Message></Error></ErrorResponse>');
        return;
      }
      const messageId = randomUUID();
      published.push({
        topicArn: form.get('TopicArn'),
        subject: form.get('Subject'),
        message: form.get('Message'),
        authorization: req.headers.authorization ?? '',
        messageId,
      });
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(`<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>${messageId}</MessageId></PublishResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></PublishResponse>`);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        endpoint: `http://127.0.0.1:${port}`,
        published,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}

// ---------------------------------------------------------------- running
function runHarness(args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [runner, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdout = Buffer.concat(out).toString('utf8');
      let report = null;
      try {
        report = JSON.parse(stdout);
      } catch {
        // left null: the checks say so
      }
      resolve({ code, stdout, stderr: Buffer.concat(err).toString('utf8'), report });
    });
  });
}

// Every Lambda event is an envelope {payload, execution_id}; checks look at the
// payload after making sure the execution id came along.
function calls(root, fn) {
  const dir = path.join(root, 'calls');
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`${fn}.`))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')))
    .map((event) => {
      check(/^arn:aws:states:/.test(event.execution_id ?? ''), `${fn} event carries the execution id`, event);
      return event.payload;
    });
}

function statesEntered(report) {
  return (report?.history ?? []).filter((e) => e.type === 'StateEntered').map((e) => e.state);
}

async function scenario(name, { input, extraArgs = [], sns, bin }) {
  const root = tempDir(`pkgrelay-sfn-${name}-`);
  fs.mkdirSync(path.join(root, 'calls'));
  fs.mkdirSync(path.join(root, 'responses'));
  for (const [file, body] of Object.entries(RESPONSES)) {
    fs.writeFileSync(path.join(root, 'responses', file), JSON.stringify(body));
  }
  const before = sns.published.length;
  const run = await runHarness(
    ['--definition', definitionPath, '--input', JSON.stringify(input), '--bin-dir', bin, ...extraArgs],
    { SNS_ENDPOINT: sns.endpoint, AWS_REGION: REGION, SELFTEST_DIR: root, SELFTEST_SCENARIO: name, SELFTEST_TOKEN: `token-${name}` },
  );
  if (run.code !== 0 || !run.report) {
    process.stdout.write(`  harness exit ${run.code}\n  stderr:\n${run.stderr}\n  stdout:\n${run.stdout.slice(0, 4000)}\n`);
  }
  return { ...run, root, sns: sns.published.slice(before) };
}

// ---------------------------------------------------------------- checks
function staticChecks() {
  process.stdout.write('definition\n');
  const text = fs.readFileSync(definitionPath, 'utf8');
  let definition = null;
  try {
    definition = JSON.parse(text);
  } catch (e) {
    check(false, 'statemachine/pipeline.asl.json is JSON', e.message);
    return;
  }
  check(true, 'statemachine/pipeline.asl.json is JSON');
  const used = new Set([...text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]));
  for (const p of PLACEHOLDERS) check(used.has(p), `placeholder \${${p}} is used`);
  const unknown = [...used].filter((p) => !PLACEHOLDERS.includes(p));
  check(unknown.length === 0, 'no other placeholder', unknown);
  check(typeof definition.Comment === 'string' && definition.Comment.length > 0, 'top-level Comment');
  const states = allStates(definition);
  const byName = Object.fromEntries(states.map((s) => [s.name, s.state]));
  for (const s of states) check(/^[A-Z][A-Za-z0-9]*$/.test(s.name), `state ${s.name} is PascalCase`);
  for (const n of ['CheckSources', 'AnythingToDo', 'DownloadAll', 'DownloadPackage', 'RecordMetadata', 'BuildIndex', 'Publish', 'NotifySuccess', 'NotifyFailure', 'NothingToDo']) {
    check(typeof byName[n]?.Comment === 'string', `state ${n} exists and has a Comment`);
  }
  const tasks = states.filter((s) => s.state.Type === 'Task');
  check(tasks.every((t) => classifyResource(t.state.Resource.replace(/\$\{(\w+)FunctionArn\}/, 'arn:aws:lambda:us-east-1:123456789012:function:x'))), 'every Task resource is a Lambda placeholder or sns:publish');
  check(tasks.filter((t) => t.state.Resource === SNS_PUBLISH).length === 2, 'two SNS publish tasks');
  for (const n of ['DownloadPackage', 'RecordMetadata']) {
    const retry = byName[n]?.Retry?.[0] ?? {};
    check(
      ['TransientError', 'Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.TooManyRequestsException'].every((e) => retry.ErrorEquals?.includes(e)) &&
        retry.IntervalSeconds === 2 && retry.BackoffRate === 2 && retry.MaxAttempts === 3 && retry.JitterStrategy === 'FULL',
      `${n} retries transient errors with exponential backoff`,
    );
    check(byName[n]?.Catch?.[0]?.ErrorEquals?.includes('States.ALL') && byName[n].Catch[0].Next === 'ItemFailed', `${n} failures end the item in ItemFailed`);
  }
  for (const n of ['CheckSources', 'DownloadAll', 'BuildIndex', 'Publish']) {
    const c = byName[n]?.Catch?.[0];
    check(c?.ErrorEquals?.includes('States.ALL') && c.ResultPath === '$.error' && c.Next === 'NotifyFailure', `${n} failures go to NotifyFailure`);
  }
  check(byName.DownloadAll?.MaxConcurrencyPath === '$.input.max_concurrency' && byName.DownloadAll?.ItemsPath === '$.check.candidates', 'DownloadAll maps $.check.candidates, MaxConcurrencyPath $.input.max_concurrency');
}

function checkMain(run) {
  const r = run.report;
  check(run.code === 0, 'harness exits 0', run.stderr);
  check(r?.status === 'SUCCEEDED', 'SUCCEEDED', r && { error: r.error, cause: r.cause });
  const entered = statesEntered(r);
  for (const s of ['Defaults', 'ApplyDefaults', 'CheckSources', 'AnythingToDo', 'DownloadAll', 'DownloadPackage', 'RecordMetadata', 'ItemFailed', 'BuildIndex', 'Publish', 'Summarize', 'NotifySuccess', 'Done']) {
    check(entered.includes(s), `history shows ${s}`);
  }
  check(!entered.includes('NotifyFailure') && !entered.includes('NothingToDo'), 'no NotifyFailure, no NothingToDo');
  const history = r?.history ?? [];
  const retried = history.filter((e) => e.type === 'StateRetried' && e.state === 'DownloadPackage');
  check(retried.length === 1 && retried[0].error_equals.includes('TransientError'), 'DownloadPackage was retried once (TransientError)', retried);
  check(history.some((e) => e.type === 'StateFailed' && e.state === 'DownloadPackage' && e.error === 'TransientError' && e.cause === 'connection reset by upstream'), 'history has the TransientError failure with its message as cause');
  check(history.some((e) => e.type === 'StateCaught' && e.state === 'DownloadPackage' && e.next === 'ItemFailed'), 'history has the InvalidPackage catch');
  check(history.filter((e) => e.type === 'MapIterationSucceeded').length === 2, 'two Map iterations succeeded');
  check(history.every((e, i) => i === 0 || history[i - 1].timestamp <= e.timestamp), 'history is in time order');
  const downloads = calls(run.root, 'download-package');
  check(downloads.length === 3, 'download-package ran 3 times (kiro twice, broken once: InvalidPackage is not retried)', downloads.length);
  check(downloads.every((d) => CANDIDATES.some((c) => JSON.stringify(c) === JSON.stringify(d))), 'download-package got exactly a candidate object', downloads);
  const check_in = calls(run.root, 'check-sources');
  check(JSON.stringify(check_in) === JSON.stringify([{ force_rebuild: false, trigger: 'staging_upload', max_concurrency: 4, key: 'staging/kiro-repo_1.0_all.deb' }]), 'check-sources got $.input: defaults merged with the execution input', check_in);
  check(JSON.stringify(calls(run.root, 'record-metadata')) === JSON.stringify([RESPONSES['staged.json']]), 'record-metadata got the staged artifact');
  check(JSON.stringify(calls(run.root, 'build-index')) === '[{"force_rebuild":false}]', 'build-index got {force_rebuild: false}');
  check(JSON.stringify(calls(run.root, 'publish')) === JSON.stringify([{ generation: 7, manifest_key: 'generations/stable/00000007/manifest.json' }]), 'publish got {generation, manifest_key}');

  const out = r?.output ?? {};
  const items = out.items ?? [];
  check(items.length === 2, '$.items has one result per candidate', items);
  check(JSON.stringify(items[0]) === JSON.stringify(RESPONSES['recorded.json']), 'the good item is {package_id, outcome}', items[0]);
  check(items[1]?.failed === true && items[1]?.error === 'InvalidPackage' && items[1]?.cause === 'broken 1.0 amd64: not a Debian package' && items[1]?.package_id === 'broken#1.0#amd64', 'the bad item is {failed: true, package_id, error: InvalidPackage, cause}', items[1]);
  check(out.publish?.status === 'published' && out.index?.generation === 7 && out.check?.proceed === true, '$.check, $.index, $.publish in the output');
  check(typeof out.notification?.MessageId === 'string', 'NotifySuccess result has the MessageId');

  check(run.sns.length === 1, 'one SNS message', run.sns);
  const msg = run.sns[0] ?? {};
  check(msg.topicArn === `arn:aws:sns:${REGION}:123456789012:pkgrelay-success`, 'sent to the success topic (region from AWS_REGION)', msg.topicArn);
  check(msg.authorization.includes(`/${REGION}/sns/aws4_request`), 'request carries the topic region in its credential scope');
  check(msg.subject === 'pkgrelay: published', 'subject names the publish status', msg.subject);
  let summary = null;
  try {
    summary = JSON.parse(msg.message);
  } catch (e) {
    check(false, 'message is JSON', `${e.message}: ${msg.message}`);
  }
  if (summary) {
    check(true, 'message is JSON');
    check(summary.status === 'published' && summary.publish?.generation === 7, 'summary has the publish result');
    check(summary.items?.length === 2 && summary.items[1].error === 'InvalidPackage', 'summary has the items, failed ones included');
    check(summary.source_failures?.[0]?.error === SOURCE_FAILURE, 'summary has the source failures, quotes/newline/backslash intact', summary.source_failures);
    check(summary.trigger === 'staging_upload' && /^arn:aws:states:eu-west-1:123456789012:execution:pkgrelay-pipeline:/.test(summary.execution), 'summary has trigger and execution ARN', summary);
  }
}

function checkNothing(run) {
  const r = run.report;
  check(run.code === 0 && r?.status === 'SUCCEEDED', 'SUCCEEDED', r && { error: r.error, cause: r.cause });
  const entered = statesEntered(r);
  check(entered.at(-1) === 'NothingToDo', 'ends at NothingToDo', entered);
  check(!entered.includes('DownloadAll') && !entered.includes('BuildIndex') && !entered.includes('Publish'), 'no DownloadAll, BuildIndex or Publish');
  check(calls(run.root, 'build-index').length === 0, 'build-index never called');
  check(run.sns.length === 0, 'no SNS message');
  check(JSON.stringify(calls(run.root, 'check-sources')) === JSON.stringify([{ force_rebuild: false, trigger: 'schedule', max_concurrency: 4 }]), 'check-sources got {force_rebuild: false, trigger: schedule, max_concurrency: 4}');
}

function checkBuildFail(run) {
  const r = run.report;
  check(run.code === 0, 'harness exits 0 although the execution failed', run.stderr);
  check(r?.status === 'FAILED', 'FAILED', r?.status);
  check(r?.error === 'InternalError' && r?.cause === 'store unreachable: table "packages"', 'execution error/cause are the BuildIndex error', r && { error: r.error, cause: r.cause });
  const entered = statesEntered(r);
  check(entered.includes('BuildIndex') && entered.includes('NotifyFailure') && entered.at(-1) === 'Failed', 'BuildIndex -> NotifyFailure -> Failed', entered);
  check(!entered.includes('Publish') && !entered.includes('NotifySuccess'), 'no Publish, no NotifySuccess');
  check(calls(run.root, 'build-index').length === 1, 'InternalError is not retried');
  check(JSON.stringify(calls(run.root, 'check-sources')) === JSON.stringify([{ force_rebuild: true, trigger: 'manual', max_concurrency: 2 }]), 'check-sources got {force_rebuild: true, trigger: manual, max_concurrency: 2}');
  check(run.sns.length === 1 && run.sns[0].topicArn === 'arn:aws:sns:eu-west-1:123456789012:ops-alerts', 'one message to the --failure-topic-arn topic', run.sns);
  let body = null;
  try {
    body = JSON.parse(run.sns[0]?.message);
  } catch {
    // checked below
  }
  check(body?.Error === 'InternalError' && body?.Cause === 'store unreachable: table "packages"', 'failure message is {Error, Cause} as JSON', run.sns[0]?.message);
}

function checkCrash(run) {
  const r = run.report;
  check(run.code === 0 && r?.status === 'SUCCEEDED', 'SUCCEEDED (a crashed item does not stop the run)', r && { error: r.error, cause: r.cause });
  const item = r?.output?.items?.[0];
  check(item?.failed === true && item?.error === 'Runtime.ExitError' && /exit status 101/.test(item?.cause) && /panicked/.test(item?.cause), 'a binary dying without an error document is Runtime.ExitError (exit status + stderr tail)', item);
  check(calls(run.root, 'download-package').length === 1, 'Runtime.ExitError is not retried');
}

async function negativeChecks(sns, bin) {
  process.stdout.write('harness refuses what it cannot run locally\n');
  const root = tempDir('pkgrelay-sfn-negative-');
  const def = JSON.parse(fs.readFileSync(definitionPath, 'utf8'));
  def.States.BuildIndex.Resource = 'arn:aws:states:::dynamodb:putItem';
  const bad = path.join(root, 'unknown-resource.asl.json');
  fs.writeFileSync(bad, JSON.stringify(def));
  let run = await runHarness(['--definition', bad, '--bin-dir', bin], { SNS_ENDPOINT: sns.endpoint });
  check(run.code === 1 && /BuildIndex.*not recognised/.test(run.stderr) && run.stdout === '', 'unknown Task resource: exit 1 before running', run.stderr);

  const partial = path.join(root, 'bin');
  fs.mkdirSync(partial);
  fs.copyFileSync(path.join(bin, 'check-sources'), path.join(partial, 'check-sources'));
  run = await runHarness(['--definition', definitionPath, '--bin-dir', partial], { SNS_ENDPOINT: sns.endpoint });
  check(run.code === 1 && /no executable .*download-package/.test(run.stderr), 'missing function binary: exit 1 before running', run.stderr);

  run = await runHarness(['--definition', definitionPath, '--bin-dir', bin], { SNS_ENDPOINT: '' });
  check(run.code === 1 && /SNS_ENDPOINT/.test(run.stderr), 'no SNS_ENDPOINT: exit 1', run.stderr);
}

async function main() {
  staticChecks();
  const tmp = tempDir('pkgrelay-sfn-bin-');
  const bin = makeBinDir(tmp);
  const sns = await startSns();
  try {
    process.stdout.write('two candidates: one retried then recorded, one InvalidPackage\n');
    checkMain(await scenario('default', { input: { trigger: 'staging_upload', key: 'staging/kiro-repo_1.0_all.deb' }, sns, bin }));

    process.stdout.write('proceed: false\n');
    checkNothing(await scenario('nothing', { input: { trigger: 'schedule' }, sns, bin }));

    process.stdout.write('BuildIndex fails\n');
    checkBuildFail(
      await scenario('buildfail', {
        input: { force_rebuild: true, max_concurrency: 2 },
        extraArgs: ['--failure-topic-arn', 'arn:aws:sns:eu-west-1:123456789012:ops-alerts', '--retry-interval-ms', '0'],
        sns,
        bin,
      }),
    );

    process.stdout.write('a function binary crashes\n');
    checkCrash(await scenario('crash', { input: {}, extraArgs: ['--retry-interval-ms', '0'], sns, bin }));

    await negativeChecks(sns, bin);
  } finally {
    await sns.close();
  }
  process.stdout.write(`\n${checks - failures}/${checks} checks passed\n`);
  if (failures === 0) {
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  } else {
    process.stdout.write(`stand-ins, responses and recorded calls kept in:\n  ${tempDirs.join('\n  ')}\n`);
  }
  process.exit(failures === 0 ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`selftest: ${e?.stack ?? e}\n`);
  process.exit(2);
});
