/**
 * `experiments report SESSION [--out FILE] [--png FILE] [--open]`: writes the session's
 * self-contained HTML report (src/report/), optionally a PNG of it through Chromium. Works for a
 * running session too (partial curves), and needs only Temporal and the checkpoint store.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { gatherReport } from '../../report/gather';
import { renderReportHtml } from '../../report/html';
import { renderReportPng } from '../../report/png';
import { stringOption, type ParsedArgs } from '../args';
import { closedSessionSummary, queried, say, withConnection } from '../commands';
import { EXIT } from '../errors';
import { displayPath } from '../output';

export async function reportCommand(parsed: ParsedArgs): Promise<number> {
  const [sessionId] = parsed.positionals;
  const out = path.resolve(stringOption(parsed, 'out') ?? `report-${sessionId}.html`);
  const png = stringOption(parsed, 'png');
  return withConnection(async (c) => {
    const source = {
      client: c.client,
      sessionSnapshot: async (id: string) => (await closedSessionSummary(c, id)) ?? (await queried(c, id, () => c.experiments.sessionSnapshot(id))),
      metrics: (workflowId: string) => c.experiments.metrics(workflowId),
    };
    const data = await gatherReport(source, sessionId);
    const html = renderReportHtml(data);
    writeFileSync(out, html);
    const points = data.series.reduce((n, s) => n + s.epochs.length, 0);
    const shown = data.coverage ? `${data.coverage.shown} of ${data.coverage.total} experiments (the summary's rows)` : `${data.series.length} experiments`;
    say(`Report of ${sessionId} (${data.state}${data.live ? ', partial' : ''}: ${shown}, ${points} epoch points): ${displayPath(out)}`);
    if (png) {
      await renderReportPng(out, path.resolve(png));
      say(`PNG: ${displayPath(path.resolve(png))}`);
    }
    if (parsed.options.open) {
      const opener = process.platform === 'darwin' ? 'open' : 'xdg-open';
      const child = spawn(opener, [out], { stdio: 'ignore', detached: true });
      child.on('error', () => say(`(could not run ${opener}; open ${displayPath(out)} in a browser)`));
      child.unref();
    }
    return EXIT.ok;
  });
}
