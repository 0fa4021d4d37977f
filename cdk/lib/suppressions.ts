// Findings of checkov and cfn-lint that are accepted on purpose, recorded on
// the resource itself with a one-line reason (the template metadata both tools
// read), so that every exception is visible where the resource is defined.

import { CfnResource } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

function cfnResource(construct: IConstruct): CfnResource {
  const resource = construct instanceof CfnResource ? construct : construct.node.defaultChild;
  if (!(resource instanceof CfnResource)) {
    throw new Error(`${construct.node.path} has no CloudFormation resource to annotate`);
  }
  return resource;
}

/** Skip a checkov check on this resource: `Metadata.checkov.skip[]` = {id, comment}. */
export function skipCheckov(construct: IConstruct, id: string, comment: string): void {
  const resource = cfnResource(construct);
  const checkov = (resource.getMetadata('checkov') as { skip?: { id: string; comment: string }[] }) ?? {};
  resource.addMetadata('checkov', { ...checkov, skip: [...(checkov.skip ?? []), { id, comment }] });
}

/** Ignore a cfn-lint rule on this resource: `Metadata.cfn-lint.config.ignore_checks[]`. */
export function ignoreCfnLint(construct: IConstruct, rule: string, reason: string): void {
  const resource = cfnResource(construct);
  const current = (resource.getMetadata('cfn-lint') as { config?: { ignore_checks?: string[] } }) ?? {};
  const reasons = (resource.getMetadata('cfn-lint-reasons') as Record<string, string>) ?? {};
  resource.addMetadata('cfn-lint', {
    config: { ignore_checks: [...(current.config?.ignore_checks ?? []), rule] },
  });
  resource.addMetadata('cfn-lint-reasons', { ...reasons, [rule]: reason });
}
