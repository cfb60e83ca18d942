// Drives the operator page of a running `tributary serve` in Debian's headless chromium through
// puppeteer-core (which downloads no browser). Usage:
//   node dashboard.js BASE_URL ORG API_KEY TOKEN FAILING_FLOW_ID SCREENSHOT.png
// Prints one JSON object on stdout: what each phase rendered.
"use strict";
const puppeteer = require("puppeteer-core");

const [base, org, apiKey, token, failingFlowId, screenshot] = process.argv.slice(2);

async function text(page) {
  return page.evaluate(() => document.body.innerText);
}

async function waitForRows(page, selector) {
  try {
    await page.waitForFunction((s) => document.querySelectorAll(s).length > 0, {timeout: 20000}, selector);
  } catch (err) {
    throw new Error("no " + selector + " in the page: " + (await text(page)) + "\n" + err);
  }
}

(async () => {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"],
    defaultViewport: {width: 1400, height: 1000},
  });
  const out = {};
  try {
    // 1. Behind an authenticating proxy: the API headers arrive with every request.
    const proxied = await browser.newPage();
    await proxied.setExtraHTTPHeaders({
      "authorization": "Bearer " + token, "x-api-key": apiKey,
      "x-gw-ims-org-id": org, "x-sandbox-name": "prod",
    });
    await proxied.goto(base + "/", {waitUntil: "load"});
    await waitForRows(proxied, "#flows tbody tr");
    out.proxiedAskedForCredentials = await proxied.evaluate(
      () => getComputedStyle(document.getElementById("auth")).display !== "none");
    out.proxied = await text(proxied);
    await proxied.close();

    // 2. No proxy: the page asks once, then keeps the credentials for the session.
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (err) => errors.push(String(err)));
    await page.goto(base + "/", {waitUntil: "load"});
    await page.waitForSelector("#auth-form input[name=org]", {visible: true, timeout: 20000});
    out.askedForCredentials = true;
    await page.type("#auth-form input[name=org]", org);
    await page.type("#auth-form input[name=key]", apiKey);
    await page.type("#auth-form input[name=token]", token);
    await page.click("#auth-form button[type=submit]");
    await waitForRows(page, "#flows tbody tr");
    out.flows = await page.evaluate(() => Array.from(document.querySelectorAll("#flows tbody tr")).map(
      (tr) => Array.from(tr.cells).map((td) => td.innerText)));
    // The failing flow's runs, then its newest run's detail.
    await page.click(`tr[data-flow="${failingFlowId}"]`);
    await waitForRows(page, "#runs tbody tr");
    await page.click("#runs tbody tr");
    await page.waitForFunction(() => !document.getElementById("run-section").hidden
      && document.querySelectorAll("#run-detail tr").length > 0
      && document.getElementById("run-rejected").childNodes.length > 0, {timeout: 20000});
    out.page = await text(page);
    out.credentialsInSession = await page.evaluate(
      () => sessionStorage.getItem("tributary.credentials") !== null);
    out.pageErrors = errors;
    await page.screenshot({path: screenshot, fullPage: true});
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out));
})().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + "\n");
  process.exit(1);
});
