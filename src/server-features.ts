/**
 * Dynamic config that every Temporal server we start gets (the dev server, the test
 * environment, the stack). Server 1.29 orders backlogged tasks by priority only under the new
 * matcher, and by fairness key only with fairness on as well; both are off by default there.
 */
export const MATCHER_DYNAMIC_CONFIG: Readonly<Record<string, unknown>> = {
  'matching.useNewMatcher': true,
  'matching.enableFairness': true,
};

/** `--dynamic-config-value KEY=JSON` arguments of `temporal server start-dev`. */
export function dynamicConfigArgs(values: Readonly<Record<string, unknown>>): string[] {
  return Object.entries(values).flatMap(([k, v]) => ['--dynamic-config-value', `${k}=${JSON.stringify(v)}`]);
}
