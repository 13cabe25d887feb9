// Browser test of the server over TLS and HTTP/2: loads the demo page from a `--tls-self-signed --demo`
// server in headless Debian Chromium and checks that the page came over h2, that its connections panel
// explains h2's streams instead of HTTP/1.1's pool of six, and that one page holds
// more than six event streams at once — over HTTP/1.1 the seventh would wait for a free connection —
// each receiving the event published after all are subscribed.
//
// Usage: node h2.test.mjs https://127.0.0.1:PORT   (run.sh starts the server and passes its address)
// Env:   CHROMIUM (default /usr/bin/chromium)

import { chromium } from "playwright-core";

const STREAMS = 10;
const base = process.argv[2];
if (!base || !/^https:\/\/[^/]+$/.test(base)) {
  console.error("usage: node h2.test.mjs https://HOST:PORT");
  process.exit(2);
}
const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${msg}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  timeout: 30000,
  // The certificate is the server's own self-signed one; the rest as the machine notes require.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--ignore-certificate-errors"],
});
let failed = null;
try {
  const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
  await page.goto(base + "/", { timeout: 15000 });
  const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
  if (protocol !== "h2") throw new Error(`the page came over ${protocol}, not h2`);
  log(`page loaded over ${protocol}`);
  // The connections panel explains h2 instead of the HTTP/1.1 pool of six, and draws no free slot.
  await page.waitForFunction(() => document.querySelectorAll("#slots .slot").length > 0, null, { timeout: 10000 });
  const panel = await page.evaluate(() => ({
    title: document.querySelector("#pool-title").textContent,
    h2Shown: !document.querySelector("#pool-h2").hidden,
    h1Shown: !document.querySelector("#pool-h1").hidden,
    free: [...document.querySelectorAll("#slots .slot")].filter((s) => s.textContent === "free").length,
  }));
  if (!panel.title.includes("HTTP/2") || !panel.h2Shown || panel.h1Shown || panel.free !== 0) {
    throw new Error(`the connections panel does not explain h2: ${JSON.stringify(panel)}`);
  }
  log(`connections panel: "${panel.title}", no pool of six`);
  const outcome = await page.evaluate(async (streams) => {
    const topic = `h2-${Date.now()}`;
    const within = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(what)), ms));
    const sources = [];
    const greeted = [];
    const received = [];
    for (let i = 0; i < streams; i++) {
      const source = new EventSource(`/sse?topic=${topic}`);
      sources.push(source);
      // The greeting is a named event (`event: subscribed`); events are plain messages.
      greeted.push(new Promise((resolve) => source.addEventListener("subscribed", () => resolve(), { once: true })));
      received.push(new Promise((resolve) => source.addEventListener("message", (m) => {
        const message = JSON.parse(m.data);
        if (message.data === "to every stream") resolve(message.id);
      })));
    }
    await Promise.race([Promise.all(greeted), within(10000, "not every stream was subscribed")]);
    const ack = await (await fetch(`/publish/${topic}`, { method: "POST", body: "to every stream" })).json();
    const ids = await Promise.race([Promise.all(received), within(10000, "not every stream got the event")]);
    sources.forEach((s) => s.close());
    return { published: ack.id, ids };
  }, STREAMS);
  if (outcome.ids.length !== STREAMS || !outcome.ids.every((id) => id === outcome.published)) {
    throw new Error(`published ${outcome.published}, streams got ${JSON.stringify(outcome.ids)}`);
  }
  log(`${STREAMS} event streams open at once on one page, each got event ${outcome.published}`);
} catch (e) {
  failed = e;
} finally {
  await browser.close();
}
if (failed) {
  console.error(`FAIL: ${failed.message}`);
  process.exit(1);
}
log("PASS: h2 browser test");
