// Runs a function binary as Lambda would run it, one process per invocation
// (a cold start every time: the binaries build their clients per process).
//
// - The environment is the function's own, from the synthesized template,
//   plus what the Lambda service adds (region, credentials of the function's
//   role: here the deployment's key for that function, which the gateway maps
//   to the role's policy) and the endpoint of the local gateway.
// - Memory: a memory cgroup whose limit is the function's MemorySize (cgroup
//   v1 `memory.limit_in_bytes` or v2 `memory.max`, whichever this machine lets
//   us create; like Lambda's microVM, the page cache of /tmp counts and is
//   reclaimed under the limit). Without a usable cgroup, a watcher reads the
//   process tree's RSS every 20 ms and kills it above the limit (coarser: a
//   spike shorter than 20 ms goes unseen); `mode` says which one is in force.
//   Either way the error is Lambda's: `Runtime.OutOfMemory`.
// - Timeout: SIGKILL at the function's Timeout, error `Sandbox.Timedout`.
// - /tmp: a fresh directory per invocation (WORK_DIR), files limited to the
//   function's EphemeralStorage size by RLIMIT_FSIZE (a per-file cap: the
//   total of several files is not enforced; written down in tests/README.md).
// - Payloads: the request and the response are limited to 6 MB (Lambda's
//   synchronous invocation quota).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const INVOKE_PAYLOAD_LIMIT = 6 * 1024 * 1024;

/** Finds a memory cgroup hierarchy this process may create children in. */
function detectCgroup() {
  const candidates = [
    { version: 1, root: '/sys/fs/cgroup/memory', limitFile: 'memory.limit_in_bytes', peakFile: 'memory.max_usage_in_bytes', swapFile: 'memory.memsw.limit_in_bytes' },
    { version: 2, root: '/sys/fs/cgroup', limitFile: 'memory.max', peakFile: 'memory.peak', swapFile: 'memory.swap.max' },
    { version: 2, root: '/sys/fs/cgroup/unified', limitFile: 'memory.max', peakFile: 'memory.peak', swapFile: 'memory.swap.max' },
  ];
  for (const c of candidates) {
    const dir = path.join(c.root, `pkgrelay-localaws-${process.pid}`);
    try {
      fs.mkdirSync(dir);
      const ok = fs.existsSync(path.join(dir, c.limitFile)) && fs.existsSync(path.join(dir, 'cgroup.procs'));
      if (ok) return { ...c, dir };
      fs.rmdirSync(dir);
    } catch {
      // not this one
    }
  }
  return null;
}

function rssOfTreeKiB(pid) {
  // The process and its descendants (a binary may start helpers; ours do not).
  let total = 0;
  const visit = (p) => {
    try {
      const status = fs.readFileSync(`/proc/${p}/status`, 'utf8');
      const m = /VmRSS:\s+(\d+)/.exec(status);
      if (m) total += Number(m[1]);
      const children = fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      for (const c of children ? children.split(/\s+/) : []) visit(c);
    } catch {
      // gone
    }
  };
  visit(pid);
  return total;
}

let invocationCounter = 0;

export class LambdaRunner {
  constructor({ binDir, log = () => {}, forceWatcher = false }) {
    this.binDir = binDir;
    this.log = log;
    this.cgroup = forceWatcher ? null : detectCgroup();
    this.mode = this.cgroup ? `cgroup v${this.cgroup.version}` : 'rss watcher';
  }

  close() {
    if (this.cgroup) {
      try {
        fs.rmdirSync(this.cgroup.dir);
      } catch {
        // children still busy: left to the OS
      }
    }
  }

  /**
   * Invoke `fn` ({name, functionName, memoryMiB, timeoutSeconds, ephemeralMiB, environment})
   * with `payload`. Resolves with
   *   { ok: true, result, durationMs, billedMs, memoryMiB, maxMemoryMiB, requestId }
   *   { ok: false, errorType, errorMessage, durationMs, billedMs, memoryMiB, maxMemoryMiB, requestId }
   * `env` is added to the function's environment (credentials, endpoint, test switches).
   */
  async invoke(fn, payload, { env = {}, signal, onLog } = {}) {
    const requestId = `${Date.now().toString(16)}-${(++invocationCounter).toString(16).padStart(4, '0')}-local`;
    const input = JSON.stringify(payload);
    if (Buffer.byteLength(input) > INVOKE_PAYLOAD_LIMIT) {
      return {
        ok: false,
        errorType: 'Lambda.RequestTooLargeException',
        errorMessage: `Request must be smaller than ${INVOKE_PAYLOAD_LIMIT} bytes for the InvokeFunction operation`,
        durationMs: 0,
        billedMs: 0,
        memoryMiB: fn.memoryMiB,
        maxMemoryMiB: 0,
        requestId,
        invoked: false,
      };
    }
    const bin = path.join(this.binDir, fn.name);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `localaws-${fn.name}-`));
    const limitBytes = fn.memoryMiB * 1024 * 1024;
    let cg = null;
    if (this.cgroup) {
      cg = path.join(this.cgroup.dir, requestId);
      fs.mkdirSync(cg);
      fs.writeFileSync(path.join(cg, this.cgroup.limitFile), String(limitBytes));
      try {
        // No swap beyond the memory limit (Lambda has none).
        fs.writeFileSync(path.join(cg, this.cgroup.swapFile), this.cgroup.version === 1 ? String(limitBytes) : '0');
      } catch {
        // swap accounting off: nothing to limit
      }
    }
    const fullEnv = {
      PATH: process.env.PATH,
      LANG: 'C.UTF-8',
      TZ: ':UTC',
      ...fn.environment,
      AWS_REGION: 'us-east-1',
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_LAMBDA_FUNCTION_NAME: fn.functionName,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memoryMiB),
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_EXECUTION_ENV: 'AWS_Lambda_provided.al2023',
      // The binaries' scratch space: Lambda's /tmp, fresh per (cold) invocation.
      WORK_DIR: tmp,
      ...env,
    };
    // prlimit: files no larger than the ephemeral storage (RLIMIT_FSIZE); a
    // shell joins the cgroup first so that every byte the binary allocates counts.
    const fsize = fn.ephemeralMiB * 1024 * 1024;
    const script = cg
      ? `echo $$ > '${path.join(cg, 'cgroup.procs')}' && exec prlimit --fsize=${fsize} -- "$0" --invoke`
      : `exec prlimit --fsize=${fsize} -- "$0" --invoke`;
    const started = process.hrtime.bigint();
    const child = spawn('/bin/sh', ['-c', script, bin], { env: fullEnv, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const stdout = [];
    let stdoutBytes = 0;
    let stderrTail = '';
    let partial = '';
    let killedFor = null;
    let peakKiB = 0;
    child.stdout.on('data', (c) => {
      stdoutBytes += c.length;
      if (stdoutBytes <= INVOKE_PAYLOAD_LIMIT + 1024) stdout.push(c);
    });
    child.stderr.on('data', (c) => {
      const text = c.toString('utf8');
      stderrTail = (stderrTail + text).slice(-4000);
      const lines = (partial + text).split('\n');
      partial = lines.pop();
      for (const line of lines) onLog?.(line);
    });
    child.stdin.on('error', () => {});
    const kill = (why) => {
      if (killedFor) return;
      killedFor = why;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => kill('timeout'), fn.timeoutSeconds * 1000);
    const onAbort = () => kill('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
    let watcher = null;
    // The process tree's resident memory, sampled: the cgroup's own peak
    // includes the page cache of what the function wrote to /tmp, which says
    // nothing about how much memory the function itself holds.
    let peakRssKiB = 0;
    watcher = setInterval(() => {
      const kib = rssOfTreeKiB(child.pid);
      peakRssKiB = Math.max(peakRssKiB, kib);
      if (!cg) {
        peakKiB = Math.max(peakKiB, kib);
        if (kib * 1024 > limitBytes) kill('memory');
      }
    }, 20);
    child.stdin.end(input);
    const { code, sig } = await new Promise((resolve) => child.on('close', (code, sig) => resolve({ code, sig })));
    clearTimeout(timer);
    clearInterval(watcher);
    signal?.removeEventListener('abort', onAbort);
    if (partial) onLog?.(partial);
    const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    let oomKilled = false;
    if (cg) {
      try {
        peakKiB = Math.round(Number(fs.readFileSync(path.join(cg, this.cgroup.peakFile), 'utf8').trim()) / 1024);
      } catch {
        // not available
      }
      try {
        if (this.cgroup.version === 1) {
          const failcnt = Number(fs.readFileSync(path.join(cg, 'memory.failcnt'), 'utf8').trim());
          const oom = fs.readFileSync(path.join(cg, 'memory.oom_control'), 'utf8');
          const m = /oom_kill (\d+)/.exec(oom);
          oomKilled = (m ? Number(m[1]) > 0 : false) || (sig === 'SIGKILL' && failcnt > 0 && !killedFor);
        } else {
          const events = fs.readFileSync(path.join(cg, 'memory.events'), 'utf8');
          const m = /oom_kill (\d+)/.exec(events);
          oomKilled = m ? Number(m[1]) > 0 : false;
        }
      } catch {
        // not available
      }
      // The processes are gone; remove the group (retry: the kernel may lag).
      for (let i = 0; i < 50; i++) {
        try {
          fs.rmdirSync(cg);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
    const base = {
      durationMs,
      // Lambda bills the duration rounded up to the millisecond (custom runtimes: init included, as here).
      billedMs: Math.ceil(durationMs),
      memoryMiB: fn.memoryMiB,
      maxMemoryMiB: Math.round(peakKiB / 1024),
      maxRssMiB: Math.round(peakRssKiB / 1024),
      requestId,
      invoked: true,
    };
    const fail = (errorType, errorMessage) => ({ ok: false, errorType, errorMessage, ...base });
    if (killedFor === 'timeout') {
      return fail('Sandbox.Timedout', `RequestId: ${requestId} Error: Task timed out after ${fn.timeoutSeconds.toFixed(2)} seconds`);
    }
    if (killedFor === 'aborted') return fail('Local.Aborted', 'the invocation was stopped');
    if (killedFor === 'memory' || oomKilled) {
      return fail('Runtime.OutOfMemory', `RequestId: ${requestId} Error: Runtime exited with error: signal: killed (memory size ${fn.memoryMiB} MB exceeded)`);
    }
    if (stdoutBytes > INVOKE_PAYLOAD_LIMIT) {
      return fail('Function.ResponseSizeTooLarge', `Response payload size exceeded maximum allowed payload size (${INVOKE_PAYLOAD_LIMIT} bytes).`);
    }
    const text = Buffer.concat(stdout).toString('utf8');
    if (code === 0) {
      try {
        return { ok: true, result: JSON.parse(text), ...base };
      } catch {
        return fail('Runtime.InvalidResponse', `the function's output is not JSON: ${JSON.stringify(text.slice(0, 300))}`);
      }
    }
    if (code === 1) {
      try {
        const err = JSON.parse(text);
        if (err && typeof err.errorType === 'string') return fail(err.errorType, String(err.errorMessage ?? ''));
      } catch {
        // a crash: below
      }
    }
    const how = sig ? `signal: ${sig.replace(/^SIG/, '').toLowerCase()}` : `exit status ${code}`;
    const tail = stderrTail.trim().split('\n').slice(-5).join('\n');
    return fail('Runtime.ExitError', `RequestId: ${requestId} Error: Runtime exited with error: ${how}${tail ? `\n${tail}` : ''}`);
  }
}
