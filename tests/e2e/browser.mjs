// Drives Debian's headless Chromium through Faultline as an operator would: log in, open the
// issue list, an issue and an event, and check what is on screen. Screenshots go to OUT_DIR.
// Usage: BASE_URL=… EMAIL=… PASSWORD=… OUT_DIR=… node browser.mjs
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const { BASE_URL, EMAIL, PASSWORD, OUT_DIR } = process.env;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(OUT_DIR, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

async function tour(colorScheme) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, colorScheme });
  const page = await context.newPage();
  const scriptErrors = [];
  page.on("pageerror", (e) => scriptErrors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") scriptErrors.push(m.text()); });
  const shot = (name) => page.screenshot({ path: `${OUT_DIR}/${colorScheme}-${name}.png`, fullPage: true });

  await page.goto(`${BASE_URL}/`);
  check(page.url().includes("/login?next="), `anonymous visit goes to login, got ${page.url()}`);
  await shot("login");
  await page.fill("input[name=email]", EMAIL);
  await page.fill("input[name=password]", PASSWORD);
  await Promise.all([page.waitForURL(`${BASE_URL}/`), page.click("button[type=submit]")]);

  const titles = await page.locator("a.issue-title").allTextContents();
  check(titles.length >= 3, `the list shows the issues: ${titles}`);
  check(titles.some((t) => t.startsWith("ValueError")), `ValueError listed: ${titles}`);
  check(await page.locator(".badge-danger", { hasText: "unhandled" }).count() >= 1, "an unhandled badge");
  check(await page.locator("svg.spark rect").count() > 0, "sparklines are drawn");
  const hostile = await page.locator("a.issue-title", { hasText: "<script>" }).count();
  check(hostile === 1, "the hostile title is shown as text");
  await shot("issues");

  await page.fill("input[name=query]", "ValueError");
  await Promise.all([page.waitForURL(/query=ValueError/), page.click("form.filters button[type=submit]")]);
  const filtered = await page.locator("a.issue-title").allTextContents();
  check(filtered.length === 1 && filtered[0].startsWith("ValueError"), `search narrows the list: ${filtered}`);

  await Promise.all([page.waitForURL(/\/issues\/\d+$/), page.locator("a.issue-title").first().click()]);
  check((await page.locator("h1.issue-heading").textContent()).startsWith("ValueError"), "issue heading");
  check(await page.locator(".stats dd").first().textContent() === "3", "three events counted");
  check(await page.locator("svg.chart").count() === 2, "hourly and daily charts");
  check(await page.locator(".tag-group h3", { hasText: "environment" }).count() === 1, "tag distribution");
  check(await page.locator("table.source tr.current").count() >= 1, "the failing line is highlighted");
  check(await page.locator(".frame.in-app").count() >= 1, "in-app frames");
  check(await page.locator("#feedback .feedback-text", { hasText: "quantity box" }).count() === 1, "the issue shows its user feedback");
  await shot("issue");

  await page.click("text=Show full stack");
  await page.waitForURL(/full=1/);
  await shot("event-full-stack");
  await Promise.all([page.waitForURL(/events\/oldest/), page.click(".event-nav >> text=Oldest")]);
  check(await page.locator("h3", { hasText: "Breadcrumbs" }).count() === 1, "breadcrumbs table");
  check(await page.locator("h3", { hasText: "Request" }).count() === 1, "request section");
  await shot("event");

  // Where the errors come from: one row per failing request.
  await Promise.all([page.waitForURL(/\/endpoints$/), page.click("nav.nav >> text=Endpoints")]);
  const endpoint = page.locator("a.endpoint-name", { hasText: "POST /cart/add" });
  check(await endpoint.count() === 1, "the failing request is listed");
  check(await page.locator("table.endpoints svg.spark").count() >= 1, "with its sparkline");
  await shot("endpoints");
  await Promise.all([page.waitForURL(/endpoint=/), endpoint.click()]);
  const onEndpoint = await page.locator("a.issue-title").allTextContents();
  check(onEndpoint.length === 1 && onEndpoint[0].startsWith("ValueError"), `the endpoint's issues: ${onEndpoint}`);

  await page.goto(`${BASE_URL}/projects`);
  await page.click("text=checkout-api");
  check((await page.locator("code.dsn").textContent()).startsWith("http://"), "the DSN is shown");
  await shot("project");
  const projectUrl = page.url();

  // What people wrote about the errors, as text.
  await Promise.all([page.waitForURL(/\/feedback$/), page.click("text=User feedback")]);
  check(await page.locator("li.feedback").count() === 2, "both reports are listed");
  check(await page.locator(".feedback-text", { hasText: "<script>alert(1)</script>" }).count() === 1, "hostile feedback is shown as text");
  check(await page.locator(".feedback-links a", { hasText: "ValueError" }).count() === 1, "a report links to its issue");
  await shot("feedback");
  await page.goto(projectUrl);

  // Alerts: add an e-mail channel through the form, then "Send test" says what happened
  // (this run has no SMTP server, so it says that).
  if (colorScheme === "light") {
    await page.selectOption("#add-channel select[name=kind]", "email");
    await page.fill("#add-channel input[name=target]", "ops@example.com");
    await Promise.all([page.waitForURL(/\/projects\/\d+/), page.click("#add-channel button[type=submit]")]);
  }
  check(await page.locator("table.channels td", { hasText: "ops@example.com" }).count() === 1, "the channel is listed");
  await Promise.all([page.waitForLoadState("load"), page.click("text=Send test")]);
  const notice = await page.locator("#alerts p.alert").textContent();
  check(notice.includes("no SMTP server is configured"), `send test reports its outcome: ${notice}`);
  // The channel's edit form opens in place, filled with what it has.
  await page.click("#alerts tr.edit-row summary");
  check(await page.locator("#alerts tr.edit-row input[name=cooldown]").inputValue() === "30m", "the edit form shows the cooldown");
  await page.locator("#alerts").screenshot({ path: `${OUT_DIR}/${colorScheme}-alerts.png` });

  check(scriptErrors.length === 0, `no script or CSP errors: ${scriptErrors}`);
  await context.close();
}

try {
  await tour("light");
  await tour("dark");
  console.log("browser tour passed");
} finally {
  await browser.close();
}
