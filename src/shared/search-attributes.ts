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
} as const;

export type SearchAttributeName = keyof typeof SEARCH_ATTRIBUTES;
