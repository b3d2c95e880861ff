/** A bounded, printable view of a payload for a log line or an error message. */
export function preview(payload: unknown): string {
  try {
    return (JSON.stringify(payload) ?? String(payload)).slice(0, 200);
  } catch {
    return typeof payload;
  }
}
