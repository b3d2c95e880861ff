/**
 * `experiments report --png`: renders a report file to a static image through Chromium
 * (playwright-core, the browser the tests use), with the network off, once the page says it has
 * drawn everything (<body data-ready="1">).
 */
import { pathToFileURL } from 'node:url';

/** Where Chromium is: CHROMIUM_PATH, else Debian's. */
export const chromiumPath = (): string => process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function renderReportPng(htmlFile: string, pngFile: string, options: { width?: number } = {}): Promise<void> {
  let chromium: typeof import('playwright-core').chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    throw new Error('--png: needs the playwright-core package (npm install playwright-core) and Chromium (apt-get install chromium)');
  }
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] }).catch((err: Error) => {
    throw new Error(`--png: could not start Chromium at ${chromiumPath()} (set CHROMIUM_PATH, or apt-get install chromium): ${err.message.split('\n')[0]}`);
  });
  try {
    const context = await browser.newContext({ offline: true, viewport: { width: options.width ?? 1200, height: 900 } });
    const page = await context.newPage();
    await page.goto(pathToFileURL(htmlFile).href);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 60_000 });
    await page.screenshot({ path: pngFile, fullPage: true });
  } finally {
    await browser.close();
  }
}
