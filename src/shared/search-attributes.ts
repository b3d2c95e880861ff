/**
 * Custom search attributes the plugin writes. The dev server registers them at start
 * (`experiments server`, tests); a production cluster must register them once with
 * `temporal operator search-attribute create` (see README).
 */
export const SEARCH_ATTRIBUTES = {
  ExperimentState: 'Keyword',
  SessionId: 'Keyword',
  ExperimentId: 'Keyword',
  ExperimentEpoch: 'Int',
  ApprovalState: 'Keyword',
  /** The one-line summary of src/shared/user-metadata.ts, so the UI's workflow list can show it as a column. */
  ExperimentSummary: 'Keyword',
} as const;

export type SearchAttributeName = keyof typeof SEARCH_ATTRIBUTES;

type SdkType<T extends string> = Uppercase<T>;

/** The SDK's typed key for one of our attributes, usable from workflow code without @temporalio/common. */
export function searchAttributeKey<N extends SearchAttributeName>(name: N): { name: N; type: SdkType<(typeof SEARCH_ATTRIBUTES)[N]> } {
  return { name, type: SEARCH_ATTRIBUTES[name].toUpperCase() as SdkType<(typeof SEARCH_ATTRIBUTES)[N]> };
}
