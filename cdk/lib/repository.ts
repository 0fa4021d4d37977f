// What the stack takes from the rest of the repository: the paths of the
// configuration, the state machine definition and the staging rule, and the
// published file names from config/repository.yaml (read at synth time, so the
// bucket policy follows the configuration).

import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';

/** The workspace root (holding Cargo.toml, config/, statemachine/). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const CARGO_MANIFEST = path.join(REPO_ROOT, 'Cargo.toml');
export const CONFIG_DIR = path.join(REPO_ROOT, 'config');
export const ASL_FILE = path.join(REPO_ROOT, 'statemachine', 'pipeline.asl.json');
/** The CloudFront Function in front of each Homebrew mirror (its prefix substituted at synth). */
export const BREW_REWRITE_FILE = path.join(REPO_ROOT, 'cdk', 'functions', 'brew-rewrite.js');
export const STAGING_RULE_FILE = path.join(REPO_ROOT, 'statemachine', 'staging-rule.json');

/** Private prefix the staging_upload source lists (shared/src/sources/mod.rs STAGING_PREFIX). */
export const STAGING_PREFIX = 'staging/';
/** Where refused uploads go (shared/src/sources/staging_upload.rs REJECTED_PREFIX). */
export const STAGING_REJECTED_PREFIX = `${STAGING_PREFIX}rejected/`;
/** Private prefix of the per-generation files (shared/src/steps/build_index.rs). */
export const GENERATIONS_PREFIX = 'generations/';
/**
 * Private prefix of what one run leaves for its later states, expired by a
 * lifecycle rule: `runs/candidates/` (check-sources' list, read by the
 * Distributed Map), `runs/entries/` (entries too large to travel inline,
 * download-package -> record-metadata), `runs/results/` (the map's
 * ResultWriter, read by build-index). See shared/src/steps/.
 */
export const RUNS_PREFIX = 'runs/';
export const CANDIDATES_PREFIX = `${RUNS_PREFIX}candidates/`;
export const ENTRIES_PREFIX = `${RUNS_PREFIX}entries/`;
export const RESULTS_PREFIX = `${RUNS_PREFIX}results/`;
/** A Homebrew mirror's API snapshot: `runs/brew/<name>/api-snapshot.json` (shared/src/brew/mod.rs). */
export const BREW_RUNS_PREFIX = `${RUNS_PREFIX}brew/`;
/** The packages table's index on (package_name, version) (functions/aws/src/dynamo.rs PACKAGE_NAME_INDEX). */
export const PACKAGE_NAME_INDEX = 'package-name-index';
/** Where the functions find the bundled config/ directory (next to `bootstrap`). */
export const CONFIG_LOCATION = '/var/task/config';

/** The five step functions, as named in functions/ and in the Cargo workspace. */
export const FUNCTION_NAMES = [
  'check-sources',
  'download-package',
  'record-metadata',
  'build-index',
  'publish',
] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

export interface RepositorySettings {
  /** `suite`: the dists/<suite>/ directory. */
  readonly suite: string;
  /** `keyring_name`: the binary public keyring at the repository root. */
  readonly keyringName: string;
  /** `convenience_copy`: the package whose newest .deb is copied to the root as `<name>.deb`. */
  readonly convenienceCopy?: string;
}

const PLAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

/** Read and check the two file names the public surface depends on. */
export function readRepositorySettings(configDir: string = CONFIG_DIR): RepositorySettings {
  const file = path.join(configDir, 'repository.yaml');
  const doc = parse(readFileSync(file, 'utf8')) as Record<string, unknown> | null;
  const keyringName = doc?.keyring_name;
  if (typeof keyringName !== 'string' || !PLAIN_NAME.test(keyringName) || !keyringName.endsWith('.gpg')) {
    throw new Error(`${file}: keyring_name must be a plain file name ending in .gpg, got ${JSON.stringify(keyringName)}`);
  }
  const copy = doc?.convenience_copy;
  if (copy !== undefined && copy !== null && (typeof copy !== 'string' || !PLAIN_NAME.test(copy))) {
    throw new Error(`${file}: convenience_copy must be a package name, got ${JSON.stringify(copy)}`);
  }
  const suite = doc?.suite;
  if (typeof suite !== 'string' || !PLAIN_NAME.test(suite)) {
    throw new Error(`${file}: suite must be a plain name, got ${JSON.stringify(suite)}`);
  }
  return { suite, keyringName, convenienceCopy: typeof copy === 'string' ? copy : undefined };
}

/** One repository of the deployment, as config/repositories.yaml lists it (shared/src/config.rs RepositoryEntry). */
export interface RepositoryEntry {
  readonly name: string;
  readonly format: 'apt' | 'homebrew';
  /** `''` (the root: the APT repository) or `<dir>/`. */
  readonly prefix: string;
  /**
   * A Homebrew mirror's scheduled runs: how many bottles its Distributed Map
   * downloads at once (`max_concurrency` in its settings file; default 10).
   */
  readonly maxConcurrency?: number;
}

/** A mirror's default download concurrency: ten Lambda functions at once stay far below an account's limit. */
export const MIRROR_DEFAULT_CONCURRENCY = 10;

/** `max_concurrency` of a Homebrew mirror's settings file (shared/src/brew/config.rs checks the rest). */
function mirrorConcurrency(file: string, where: string): number {
  if (!existsSync(file)) {
    throw new Error(`${where}.config: ${file} does not exist`);
  }
  const doc = (parse(readFileSync(file, 'utf8')) ?? {}) as { max_concurrency?: unknown };
  const n = doc.max_concurrency ?? MIRROR_DEFAULT_CONCURRENCY;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1000) {
    throw new Error(`${file}: max_concurrency: a whole number from 1 to 1000, got ${JSON.stringify(n)}`);
  }
  return n;
}

const REPOSITORY_NAME = /^[a-z][a-z0-9-]{0,31}$/;
const PREFIX = /^[a-z0-9_-]+(\/[a-z0-9_-]+)*\/$/;
/** Prefixes no repository may take: APT's tree and the private prefixes (shared/src/blob.rs PRIVATE_PREFIXES). */
const RESERVED_PREFIXES = ['pool/', 'dists/', 'staging/', 'generations/', 'runs/', 'tmp/', 'config/'];

/**
 * The repositories of the deployment: config/repositories.yaml, or the APT
 * repository alone at the root without it. The CLI and the functions read
 * the same file (shared/src/config.rs), which checks it in full; this
 * checks what the stack builds from it (names, formats, prefixes).
 */
export function readRepositories(configDir: string = CONFIG_DIR): RepositoryEntry[] {
  const file = path.join(configDir, 'repositories.yaml');
  if (!existsSync(file)) {
    return [{ name: 'apt', format: 'apt', prefix: '' }];
  }
  const doc = parse(readFileSync(file, 'utf8')) as { repositories?: unknown } | null;
  if (!doc || !Array.isArray(doc.repositories)) {
    throw new Error(`${file}: expected \`repositories:\`, a list`);
  }
  const list: RepositoryEntry[] = doc.repositories.map((r: any, i: number) => {
    const where = `${file}: repositories[${i}]`;
    if (typeof r?.name !== 'string' || !REPOSITORY_NAME.test(r.name)) {
      throw new Error(`${where}.name: lower-case letters, digits and -, got ${JSON.stringify(r?.name)}`);
    }
    if (r.format !== 'apt' && r.format !== 'homebrew') {
      throw new Error(`${where}.format: apt or homebrew, got ${JSON.stringify(r.format)}`);
    }
    const prefix = r.prefix ?? '';
    if (r.format === 'apt' && prefix !== '') {
      throw new Error(`${where}.prefix: the APT repository lives at the root`);
    }
    if (r.format !== 'apt' && (typeof prefix !== 'string' || !PREFIX.test(prefix) || RESERVED_PREFIXES.some((p) => prefix.startsWith(p)))) {
      throw new Error(`${where}.prefix: a directory of its own (\`brew/\`), got ${JSON.stringify(prefix)}`);
    }
    if (r.format === 'homebrew') {
      if (typeof r.config !== 'string') {
        throw new Error(`${where}.config: a Homebrew mirror names its settings file`);
      }
      return { name: r.name, format: r.format, prefix, maxConcurrency: mirrorConcurrency(path.join(configDir, r.config), where) };
    }
    return { name: r.name, format: r.format, prefix };
  });
  const names = list.map((r) => r.name);
  if (new Set(names).size !== names.length) {
    throw new Error(`${file}: a repository name is listed twice (${names.join(', ')})`);
  }
  if (list.filter((r) => r.format === 'apt').length !== 1) {
    throw new Error(`${file}: list exactly one APT repository (format: apt)`);
  }
  const prefixes = list.map((r) => r.prefix).filter((p) => p !== '');
  for (const p of prefixes) {
    if (prefixes.some((o) => o !== p && (o.startsWith(p) || p.startsWith(o))) || prefixes.filter((o) => o === p).length > 1) {
      throw new Error(`${file}: prefix ${p} overlaps another repository's`);
    }
  }
  return list;
}

/**
 * The object keys (S3 resource patterns) clients may read: the pool, the dists
 * tree, the root page, the convenience copy and the keyring. Never `staging/`,
 * `generations/` or anything else.
 */
export function publicPaths(settings: RepositorySettings, repositories: RepositoryEntry[] = []): string[] {
  return [
    'pool/*',
    'dists/*',
    'index.html',
    ...(settings.convenienceCopy ? [`${settings.convenienceCopy}.deb`] : []),
    settings.keyringName,
    // Every other repository's files, under its prefix.
    ...repositories.filter((r) => r.prefix !== '').map((r) => `${r.prefix}*`),
  ];
}

export function readJson(file: string): any {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/**
 * Replace every `${Name}` placeholder in the string values of `value` (deeply)
 * with `substitutions[Name]`; an unknown placeholder is an error.
 */
export function substitutePlaceholders<T>(value: T, substitutions: Record<string, string>): T {
  const walk = (v: any): any => {
    if (typeof v === 'string') {
      return v.replace(/\$\{([A-Za-z0-9]+)\}/g, (_, name: string) => {
        if (!(name in substitutions)) {
          throw new Error(`no substitution for \${${name}}`);
        }
        return substitutions[name];
      });
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return walk(value);
}
