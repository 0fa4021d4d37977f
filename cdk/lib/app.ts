// Builds the app: two stacks for the environment named by the `env` context
// value, `pkgrelay-<env>` (the package pipeline) and `pkgrelay-<env>-media`
// (the GoPro media sync, lib/media-stack.ts). Shared by bin/pkgrelay.ts and the tests.

import { Annotations, App, AppProps } from 'aws-cdk-lib';
import { environmentFromContext } from './environments';
import { MEDIA_VPC_CONTEXT, MediaStack, mediaVpcFromContext } from './media-stack';
import { PkgrelayStack } from './pkgrelay-stack';

/** The context key naming another configuration directory to read (tests; default config/). */
export const CONFIG_DIR_CONTEXT = 'pkgrelay:config-dir';

/** The context key the CDK reads to decide which stacks' assets to bundle. */
export const BUNDLING_STACKS = 'aws:cdk:bundling-stacks';

export function createApp(props: AppProps = {}): { app: App; stack: PkgrelayStack; mediaStack: MediaStack } {
  const app = new App({ analyticsReporting: false, ...props });
  // `-c bundling=false`: synthesize without building the Rust functions (CI,
  // tests). The CLI refuses `-c aws:cdk:bundling-stacks=[]` itself ("keys
  // prefixed with 'aws:'"), so the app sets it.
  const skipBundling = String(app.node.tryGetContext('bundling')) === 'false';
  if (skipBundling) {
    app.node.setContext(BUNDLING_STACKS, []);
  }
  const environment = environmentFromContext(app.node);
  const configDir = app.node.tryGetContext(CONFIG_DIR_CONTEXT);
  const stack = new PkgrelayStack(app, environment.prefix, {
    environment,
    configDir: typeof configDir === 'string' ? configDir : undefined,
    description: `pkgrelay (${environment.name}): mirrors upstream releases into a signed APT repository`,
    // Account and region of the deploying credentials; environment-agnostic
    // when there are none (synth works offline).
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
    tags: { project: 'pkgrelay', environment: environment.name },
  });
  // Independent of the package pipeline's stack (no cross-stack reference):
  // either can be deployed, updated or deleted alone.
  const mediaStack = new MediaStack(app, `${environment.prefix}-media`, {
    environment,
    vpc: mediaVpcFromContext(app.node.tryGetContext(MEDIA_VPC_CONTEXT)),
    description: `pkgrelay (${environment.name}): copies a GoPro cloud media library into S3, daily`,
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
    tags: { project: 'pkgrelay', environment: environment.name, component: 'media' },
  });
  const bundlingStacks = app.node.tryGetContext(BUNDLING_STACKS);
  if (Array.isArray(bundlingStacks) && bundlingStacks.length === 0) {
    for (const s of [stack, mediaStack]) {
      Annotations.of(s).addWarningV2(
        'pkgrelay:no-bundling',
        'synthesized without building the Rust functions: the function assets are placeholders, do not deploy this output',
      );
    }
  }
  return { app, stack, mediaStack };
}
