// Drives Debian's Chromium through the twinsync console, one phase per run (tests/browser.rs
// changes the nodes between phases). Every page visited gets an axe-core check (no serious
// or critical violation) and a screenshot under $SHOTS. Any JavaScript dialog (an escaped
// <script> that ran after all) or CSP violation fails the run.
//
//   NODE_PATH=target/browser/node_modules node tests/browser/console.cjs PHASE
//   env: CONSOLE_URL, TOKEN, SHOTS, and per phase NEW_SUMMARY
"use strict";
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const base = process.env.CONSOLE_URL;
const shots = process.env.SHOTS;
const phase = process.argv[2];
const axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const problems = [];

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function audit(page, name) {
  // Through the DevTools protocol, not a <script> tag: the page's CSP stays as it is.
  await page.evaluate(axeSource);
  const results = await page.evaluate(() =>
    window.axe.run(document, { resultTypes: ["violations"] }));
  for (const v of results.violations) {
    if (v.impact === "serious" || v.impact === "critical") {
      problems.push(`${name}: axe ${v.impact} ${v.id}: ${v.help} (${v.nodes.map(n => n.target.join(" ")).join(", ")})`);
    }
  }
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  // The README's pictures (docs/console-*.png) are these, one screen high.
  if (name === "overview" || name === "twin") {
    await page.screenshot({ path: path.join(shots, `${name}-screen.png`) });
  }
  console.log(`page ${name}: ${page.url()} (axe: ${results.violations.length} violation(s) of any impact)`);
}

async function login(page) {
  await page.goto(`${base}/console`);
  check(page.url().endsWith("/console/login"), `not sent to the login page: ${page.url()}`);
  await audit(page, `${phase}-login`);
  await page.getByLabel("Admin token").fill(process.env.TOKEN);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(`${base}/console`);
  check(await page.getByRole("heading", { name: "Overview" }).isVisible(), "no overview after login");
}

const phases = {
  // A connection is healthy; every list page answers.
  async healthy(page) {
    await login(page);
    check(await page.getByText("healthy").first().isVisible(), "the connection is not shown healthy");
    await audit(page, "overview");
    for (const name of ["Queue", "Twins", "Conflicts", "Plugins", "Errors"]) {
      await page.getByRole("link", { name, exact: true }).click();
      await page.getByRole("heading", { name, exact: true }).waitFor();
      await audit(page, name.toLowerCase());
    }
  },
  // The processor refuses a change: find the error and read its log and failure.
  async broken(page) {
    await login(page);
    check(await page.getByText(/sync error/).first().isVisible(), "the overview shows no sync error");
    await page.getByRole("link", { name: "Errors", exact: true }).click();
    await page.locator("table a[href^='/console/errors/']").first().click();
    await page.getByRole("heading", { name: "Processor log" }).waitFor();
    const text = await page.locator("main").innerText();
    check(text.includes("processor-error"), "the error page does not name the failure");
    check(text.includes("refusing issue on purpose"), "the error page lacks the processor's message");
    const more = page.getByText(/Show all/).first();
    if (await more.count()) await more.click();
    await audit(page, "error");
  },
  // Fixed: retry from the console, and watch the twin's history gain the event.
  async fixed(page) {
    await login(page);
    await page.getByRole("link", { name: "Errors", exact: true }).click();
    await page.locator("table a[href^='/console/errors/']").first().click();
    await page.getByRole("link", { name: "Retry…" }).click();
    await audit(page, "retry-confirm");
    await page.getByRole("button", { name: "Retry", exact: true }).click();
    await page.getByRole("heading", { name: /^Error / }).waitFor();
    const twin = page.locator("dt:text('Twin') + dd a");
    await twin.click();
    const summary = process.env.NEW_SUMMARY;
    for (let i = 0; ; i++) {
      const first = page.locator("ol.timeline > li").first();
      const done = (await first.getAttribute("class")) === "done";
      if (done && (await first.innerText()).includes(summary)) break;
      check(i < 100, "the twin's history did not gain the retried event");
      await page.waitForTimeout(200);
      await page.reload();
    }
    const diff = page.locator("ol.timeline > li").first().locator("table.diff");
    check((await diff.innerText()).includes("summary"), "the history entry has no diff of the summary");
    await audit(page, "twin");
  },
  // A conflict held for review: both values side by side, keep one.
  async conflict(page) {
    await login(page);
    await page.getByRole("link", { name: "Conflicts", exact: true }).click();
    const card = page.locator("section.card").first();
    await card.waitFor();
    const text = await card.innerText();
    check(text.includes("Local value") && text.includes("Remote value"), "the conflict lacks its two values");
    await audit(page, "conflict");
    await card.getByRole("button", { name: "Keep the remote value" }).click();
    await page.getByText("No conflicts held for review.").waitFor();
  },
};

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    page.on("dialog", async dialog => {
      problems.push(`a script ran: ${dialog.type()} "${dialog.message()}" on ${page.url()}`);
      await dialog.dismiss();
    });
    page.on("console", message => {
      if (message.type() === "error") problems.push(`console error on ${page.url()}: ${message.text()}`);
    });
    page.on("pageerror", error => problems.push(`page error on ${page.url()}: ${error}`));
    page.setDefaultTimeout(20000);
    await phases[phase](page);
  } catch (error) {
    problems.push(`${phase}: ${error.stack || error}`);
  } finally {
    await browser.close();
  }
  if (problems.length) {
    console.error(problems.join("\n"));
    process.exit(1);
  }
  console.log(`phase ${phase}: ok`);
})();
