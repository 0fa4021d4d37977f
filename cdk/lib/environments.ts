// Deployment environments, chosen with `-c env=dev|staging|prod`. Each one is
// its own stack (`pkgrelay-<env>`) whose named resources carry the prefix
// `pkgrelay-<env>-`, so that all three can live in one account and region.

import { Node } from 'constructs';

export const ENVIRONMENT_NAMES = ['dev', 'staging', 'prod'] as const;
export type EnvironmentName = (typeof ENVIRONMENT_NAMES)[number];

export interface EnvironmentSettings {
  readonly name: EnvironmentName;
  /** Stack name and prefix of every named resource. */
  readonly prefix: string;
  /**
   * Keep the tables, the signing key secret and the logs when the stack is
   * deleted (and protect the tables against deletion). The bucket is always kept.
   */
  readonly retainData: boolean;
  /**
   * Deploy the Slack notifier: a function subscribed to the success and
   * failure topics that posts each notification to the incoming webhook
   * whose URL the operator puts into the secret `<prefix>-slack-webhook`
   * (created without a value; until it holds one, nothing is posted).
   * The secret costs $0.40 a month, so an environment opts in.
   */
  readonly slackNotifications: boolean;
}

export function environmentSettings(name: string): EnvironmentSettings {
  if (!(ENVIRONMENT_NAMES as readonly string[]).includes(name)) {
    throw new Error(`unknown environment ${JSON.stringify(name)}: pass -c env=${ENVIRONMENT_NAMES.join('|')}`);
  }
  const env = name as EnvironmentName;
  return {
    name: env,
    prefix: `pkgrelay-${env}`,
    retainData: env === 'prod',
    slackNotifications: env === 'dev' || env === 'prod',
  };
}

/** The environment named by the `env` context value (required). */
export function environmentFromContext(node: Node): EnvironmentSettings {
  const name = node.tryGetContext('env');
  if (name === undefined) {
    throw new Error(`no environment given: pass -c env=${ENVIRONMENT_NAMES.join('|')}`);
  }
  return environmentSettings(String(name));
}
