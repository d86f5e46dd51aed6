// The TypeScript shop of ts-app/, built and run as a team ships it, for the source-map test.
//
//   node ts_app.mjs build OUT   esbuild bundles, minifies and writes source maps:
//                               OUT/browser/app.js(.map) with @sentry/browser,
//                               OUT/node/app.js(.map) with @sentry/node.
//   node ts_app.mjs browser OUT serves OUT/browser on its own origin; headless Chromium opens it
//                               with the DSN in the hash and runs a failing checkout.
//   (the Node build runs as `node OUT/node/app.js` with FAULTLINE_DSN.)
//   node ts_app.mjs page        an operator logs in (BASE_URL, EMAIL, PASSWORD) and opens the
//                               event at EVENT_PATH: the TypeScript frame, then its minified
//                               form; screenshots OUT_DIR/{light,dark}-sourcemapped-event.png.
//
// Between build and run, the Rust test runs sentry-cli's `sourcemaps inject` and `upload`.
// Each run prints one JSON line {"eventId": …}. Usage: DSN=… node ts_app.mjs browser OUT
import { build } from "esbuild";
import { serveFiles } from "./static_site.mjs";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const [mode, out] = process.argv.slice(2);
const here = new URL(".", import.meta.url).pathname;

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function buildAll() {
  const common = { bundle: true, minify: true, sourcemap: true, logLevel: "error" };
  await build({
    ...common,
    entryPoints: [`${here}ts-app/src/browser.ts`],
    outfile: join(out, "browser/app.js"),
    format: "iife",
    globalName: "Shop",
    platform: "browser",
  });
  await build({
    ...common,
    entryPoints: [`${here}ts-app/src/node.ts`],
    outfile: join(out, "node/app.js"),
    format: "cjs",
    platform: "node",
  });
}

async function runInBrowser() {
  const { chromium } = await import("playwright-core");
  const dir = join(out, "browser");
  const files = {
    "/": ["text/html; charset=utf-8", readFileSync(`${here}ts-app/index.html`)],
    "/app.js": ["text/javascript; charset=utf-8", readFileSync(join(dir, "app.js"))],
  };
  const site = await serveFiles(files);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  try {
    const page = await browser.newPage();
    const scriptErrors = [];
    page.on("pageerror", (e) => scriptErrors.push(String(e)));
    await page.goto(`http://127.0.0.1:${site.address().port}/#${process.env.DSN}`);
    const eventId = await page.evaluate(async () => {
      const id = Shop.checkout("WINTER");
      await Shop.flush();
      return id;
    });
    check(/^[0-9a-f]{32}$/.test(eventId), `the SDK returned an event id: ${eventId}`);
    check(scriptErrors.length === 0, `no script errors: ${scriptErrors}`);
    console.log(JSON.stringify({ eventId }));
  } finally {
    await browser.close();
    site.close();
  }
}

async function showEventPage() {
  const { chromium } = await import("playwright-core");
  const { BASE_URL, EMAIL, PASSWORD, EVENT_PATH, OUT_DIR } = process.env;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  try {
    for (const colorScheme of ["light", "dark"]) {
      const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, colorScheme });
      const page = await context.newPage();
      await page.goto(`${BASE_URL}/login`);
      await page.fill("input[name=email]", EMAIL);
      await page.fill("input[name=password]", PASSWORD);
      await Promise.all([page.waitForURL(`${BASE_URL}/`), page.click("button[type=submit]")]);
      await page.goto(`${BASE_URL}${EVENT_PATH}`);
      const frame = page.locator(".frame", { hasText: "src/checkout.ts" }).first();
      check(await frame.count() === 1, "the TypeScript frame is shown");
      check((await frame.textContent()).includes("applyCoupon"), "with its original function");
      check(await page.locator("table.source tr.current", { hasText: "does not apply" }).count() >= 1,
        "the original line is the highlighted one");
      const minified = frame.locator("details.minified");
      check(await minified.count() === 1, "the minified frame can be shown");
      check(!(await minified.locator("code").isVisible()), "the minified frame is folded at first");
      await minified.locator("summary").click();
      check((await minified.locator("code").textContent()).includes("app.js:"), "the minified file, line and column when opened");
      await frame.scrollIntoViewIfNeeded();
      await page.screenshot({ path: `${OUT_DIR}/${colorScheme}-sourcemapped-event.png`, fullPage: true });
      await context.close();
    }
    console.log("event page checked");
  } finally {
    await browser.close();
  }
}

if (mode === "page") {
  await showEventPage();
} else if (mode === "build") {
  await buildAll();
  check(existsSync(join(out, "browser/app.js.map")), "the browser map was written");
  check(existsSync(join(out, "node/app.js.map")), "the Node map was written");
} else if (mode === "browser") {
  await runInBrowser();
} else {
  throw new Error("usage: node ts_app.mjs build|browser OUT, or page");
}
