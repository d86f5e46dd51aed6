// @sentry/browser in headless Chromium against Faultline, on a page of another origin, as an
// application uses it: an error is captured, the crash-report dialog is opened with
// Sentry.showReportDialog({ eventId }), filled in and sent, then closed (the SDK hears
// onClose); and Sentry.captureFeedback sends feedback about the same error.
// Prints one JSON line {"eventId": …} for the Rust test, which checks what was stored.
// Usage: DSN=… OUT_DIR=… node browser_sdk.mjs
import { build } from "esbuild";
import { serveFiles } from "./static_site.mjs";
import { readFileSync, mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const { DSN, OUT_DIR } = process.env;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(OUT_DIR, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

const here = new URL(".", import.meta.url).pathname;
const bundle = await build({
  entryPoints: [`${here}sdk-page/entry.js`],
  bundle: true,
  minify: true,
  format: "iife",
  globalName: "Sentry",
  write: false,
  logLevel: "error",
});
const files = {
  "/": ["text/html; charset=utf-8", readFileSync(`${here}sdk-page/index.html`)],
  "/sdk.js": ["text/javascript; charset=utf-8", bundle.outputFiles[0].contents],
};
const site = await serveFiles(files);
const origin = `http://127.0.0.1:${site.address().port}`;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  const scriptErrors = [];
  page.on("pageerror", (e) => scriptErrors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") scriptErrors.push(m.text()); });
  await page.goto(`${origin}/#${DSN}`);

  const eventId = await page.evaluate(() => window.failCheckout());
  check(/^[0-9a-f]{32}$/.test(eventId), `the SDK returned an event id: ${eventId}`);

  // The crash-report dialog, loaded from Faultline into this page.
  await page.evaluate((id) => {
    window.dialogClosed = false;
    Sentry.showReportDialog({
      eventId: id,
      user: { name: "Jane Doe", email: "jane@example.com" },
      title: "Sorry, checkout failed.",
      onClose: () => { window.dialogClosed = true; },
    });
  }, eventId);
  const dialog = page.locator(".sentry-error-embed");
  await dialog.waitFor({ state: "visible", timeout: 10000 });
  check(await dialog.locator("h2").textContent() === "Sorry, checkout failed.", "the title option is used");
  check(await page.inputValue("#sentry-error-embed-name") === "Jane Doe", "the user's name is prefilled");
  check(await page.inputValue("#sentry-error-embed-email") === "jane@example.com", "the e-mail is prefilled");

  // Sent empty first: the dialog marks the field Faultline refused.
  await dialog.locator("button[type=submit]").click();
  await page.waitForFunction(() => document.querySelector("#sentry-error-embed-comments").getAttribute("aria-invalid") === "true");
  await page.fill("#sentry-error-embed-comments", "I entered SPRING as the coupon and the page went blank.");
  await page.screenshot({ path: `${OUT_DIR}/report-dialog.png` });
  await dialog.locator("button[type=submit]").click();
  await dialog.locator("[role=alert]", { hasText: "Your feedback has been sent" }).waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${OUT_DIR}/report-dialog-sent.png` });
  await dialog.locator("button.sentry-error-embed-close").click();
  await page.waitForFunction(() => window.dialogClosed === true, null, { timeout: 5000 });
  check(await page.locator(".sentry-error-embed-wrapper").count() === 0, "the dialog is gone");

  // The current feedback API, about the same error.
  await page.evaluate(async (id) => {
    Sentry.captureFeedback({
      message: "The coupon field rejects every code.",
      name: "Ana",
      email: "ana@example.com",
      associatedEventId: id,
    });
    await Sentry.flush(5000);
  }, eventId);

  const refused = scriptErrors.filter((e) => !e.includes("400 (Bad Request)"));
  check(refused.length === 0, `no script errors: ${refused}`);
  console.log(JSON.stringify({ eventId }));
  console.log("browser sdk passed");
} finally {
  await browser.close();
  site.close();
}
