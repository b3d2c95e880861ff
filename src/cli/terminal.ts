/**
 * Terminal safety for strings the CLI did not write itself: approver names, notes, reasons,
 * cancel reasons, a child's stderr inside a failure message, metric names. Anyone who can send a
 * signal or start a workflow chooses them, so before they reach a terminal every control
 * sequence (CSI such as `ESC[2J`, OSC such as a title or hyperlink, other ESC sequences) is
 * removed, and every other control character (C0, DEL, C1) too. Printing is the boundary: the
 * JSON output (`--json`) needs nothing, since JSON.stringify escapes control characters.
 */

// eslint-disable-next-line no-control-regex
const SEQUENCES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|\x1b[ -/]*[0-~]?|\x9b[0-?]*[ -/]*[@-~]/g;
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;
const LINE_BREAKS = /[\n\t]/g;

/** Text that may span lines (a failure reason with stderr lines): newlines and tabs are kept. */
export function safeText(text: string): string {
  return text.replace(SEQUENCES, '').replace(CONTROLS, '');
}

/** One line (a name, a note): also newlines and tabs become spaces, so it cannot forge a line. */
export function safe(text: string | undefined | null): string {
  return safeText(text ?? '').replace(LINE_BREAKS, ' ');
}
