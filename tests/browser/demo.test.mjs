// Browser test of the teaching demo page (issue 5): loads `/` of a running pushbench-server in headless
// Debian Chromium and checks, through the page's data-transport / data-metric elements, that every one of
// the five transport panels receives exactly the events the server holds (none missing, none twice), also
// across "drop connection", and that the page's controls reach the server. Leaves a screenshot behind.
//
// Usage: node demo.test.mjs http://127.0.0.1:PORT   (run.sh starts the server and passes its address)
// Env:   ARTIFACT_DIR (default ./artifacts), CHROMIUM (default /usr/bin/chromium)

import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const TRANSPORTS = ["poll", "longpoll", "stream", "sse", "ws"];
const HERE = path.dirname(fileURLToPath(import.meta.url));
const base = process.argv[2];
if (!base || !/^http:\/\/[^/]+$/.test(base)) {
  console.error("usage: node demo.test.mjs http://HOST:PORT");
  process.exit(2);
}
const artifactDir = path.resolve(process.env.ARTIFACT_DIR || path.join(HERE, "artifacts"));
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

/** Every wait is bounded; a panel that never receives fails within this. */
const WAIT_MS = 15000;
const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${msg}`);

class TestFailure extends Error {}
function check(cond, msg) {
  if (!cond) throw new TestFailure(msg);
}

async function server(method, p, body) {
  const res = await fetch(base + p, {
    method,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    headers: body === undefined || typeof body === "string" ? {} : { "content-type": "application/json" },
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  check(res.ok, `${method} ${p}: HTTP ${res.status} ${text}`);
  return JSON.parse(text);
}

/** The truth: every event on the topic after `start`, read from the server's replay buffer. */
async function serverIds(topic, start) {
  const ids = [];
  let cursor = start;
  for (;;) {
    const page = await server("GET", `/poll?topic=${topic}&after=${cursor}`);
    check(!page.gap, `server reports a gap after ${cursor}; the test publishes too little for that`);
    ids.push(...page.events.map((e) => e.id));
    if (page.events.length === 0) return ids;
    cursor = page.next;
  }
}

async function publish(topic, n, label) {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push((await server("POST", `/publish/${topic}`, `${label} ${i + 1}/${n}`)).id);
  return ids;
}

/** What one panel shows: the text of its data-metric elements, plus the ids the page's view exposes. */
function snapshot(page) {
  return page.evaluate((transports) => {
    const out = {};
    for (const t of transports) {
      const el = document.querySelector(`[data-transport="${t}"]`);
      const metric = (m) => el?.querySelector(`[data-metric="${m}"]`)?.textContent ?? null;
      out[t] = {
        exists: !!el,
        state: el?.dataset.state ?? null,
        received: metric("received"),
        requests: metric("requests"),
        missed: metric("missed"),
        duplicates: metric("duplicates"),
        gaps: metric("gaps"),
        ids: window.pushbench?.panels?.[t]?.ids() ?? [],
      };
    }
    return out;
  }, TRANSPORTS);
}

/**
 * Waits until every panel shows exactly `expected` (the ids, in order; the received count as text), with
 * no missed, duplicated or gap events; on timeout, fails naming each panel that is off and how.
 */
async function expectAllPanels(page, expected, what) {
  const deadline = Date.now() + WAIT_MS;
  let snap;
  for (;;) {
    snap = await snapshot(page);
    const wrong = TRANSPORTS.filter((t) => !panelMatches(snap[t], expected));
    if (wrong.length === 0) break;
    if (Date.now() > deadline) {
      const detail = wrong.map((t) => {
        const s = snap[t];
        const missing = expected.filter((id) => !s.ids.includes(id));
        return `  ${t}: state=${s.state} received=${s.received} (want ${expected.length}) missed=${s.missed} ` +
          `duplicates=${s.duplicates} gaps=${s.gaps} missing ids=${JSON.stringify(missing.slice(0, 10))}` +
          `${missing.length > 10 ? "…" : ""} extra=${JSON.stringify(s.ids.filter((id) => !expected.includes(id)).slice(0, 10))}`;
      });
      throw new TestFailure(`${what}: ${wrong.length} panel(s) wrong after ${WAIT_MS / 1000} s:\n${detail.join("\n")}`);
    }
    await page.waitForTimeout(100);
  }
  log(`${what}: all 5 panels have the ${expected.length} events, in order, none missed or twice`);
  return snap;
}

function panelMatches(s, expected) {
  return s.exists && s.received === String(expected.length) && s.missed === "0" && s.duplicates === "0" &&
    s.gaps === "0" && s.ids.length === expected.length && s.ids.every((id, i) => id === expected[i]);
}

async function waitForState(page, transport, states, what) {
  await page.waitForFunction(
    ([t, want]) => want.includes(document.querySelector(`[data-transport="${t}"]`)?.dataset.state),
    [transport, states],
    { timeout: WAIT_MS, polling: 20 },
  ).catch(() => { throw new TestFailure(`${transport}: never reached state ${states.join("/")} (${what})`); });
}

async function main() {
  mkdirSync(artifactDir, { recursive: true });
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: 30000,
    // As the machine notes require: no sandbox as root, and no background traffic to a closed network.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const pageErrors = [];
  let page = null;
  try {
    const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
    page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    page.on("console", (msg) => { if (msg.type() === "error") pageErrors.push(`console: ${msg.text()}`); });

    log(`chromium ${browser.version()}, page ${base}/`);
    await page.goto(base + "/", { waitUntil: "load", timeout: WAIT_MS });
    for (const t of TRANSPORTS) {
      check(await page.locator(`[data-transport="${t}"] [data-metric="received"]`).count() === 1,
        `no panel data-transport="${t}" with a data-metric="received" element`);
    }
    const { topic, start } = await page.waitForFunction(
      () => window.pushbench?.startCursor != null && { topic: window.pushbench.topic, start: window.pushbench.startCursor },
    ).then((h) => h.jsonValue());
    log(`page subscribed all panels to topic ${topic} after cursor ${start}`);

    // A faster poll keeps the test short; this also exercises the poll-interval control.
    await page.fill("#poll-interval", "200");
    await page.dispatchEvent("#poll-interval", "change");

    // 1. Known events published by the test arrive everywhere, exactly.
    const first = await publish(topic, 40, "test event");
    let expected = await serverIds(topic, start);
    check(JSON.stringify(expected) === JSON.stringify(first), "the server holds other events than the test published");
    await expectAllPanels(page, expected, "40 published events");

    // 2. "drop connection" on each panel: while it is down, more events are published; it must resume
    //    from its cursor and get them, with nothing lost or repeated, and make a new request to do so.
    for (const t of TRANSPORTS) {
      const before = (await snapshot(page))[t];
      await page.click(`[data-transport="${t}"] button.drop`);
      await waitForState(page, t, ["dropped"], "after clicking drop connection");
      await publish(topic, 10, `while ${t} was down`);
      expected = await serverIds(topic, start);
      const after = await expectAllPanels(page, expected, `drop ${t}, 10 events published while down`);
      check(Number(after[t].requests) > Number(before.requests),
        `${t}: requests did not grow after the drop (${before.requests} → ${after[t].requests}); it did not reconnect`);
      check(after[t].state === "live" || t === "longpoll", `${t}: state ${after[t].state} after resuming`);
    }

    // 3. The page's own controls: "publish one", and the synthetic publisher via PUT /generator.
    await page.click("#publish-one");
    expected = await serverIds(topic, start);
    check(expected.length === 40 + 50 + 1, `"publish one" did not publish exactly one event (${expected.length})`);
    await expectAllPanels(page, expected, '"publish one" button');

    await page.fill("#rate", "20");
    await page.dispatchEvent("#rate", "change");
    await page.waitForFunction(() => document.querySelector("#generator-status").textContent.includes("20 events/s"));
    const generator = await server("GET", "/generator");
    check(generator.rate === 20, `rate control did not reach the server: ${JSON.stringify(generator)}`);
    log("rate control set the synthetic publisher to 20 events/s");
    await page.waitForTimeout(3000);
    await page.click('[data-rate="0"]');
    await page.waitForFunction(() => document.querySelector("#generator-status").textContent.includes("stopped"));
    check((await server("GET", "/generator")).rate === 0, "stop preset did not stop the synthetic publisher");
    expected = await serverIds(topic, start);
    check(expected.length > 91 + 30, `synthetic publisher produced too little (${expected.length - 91} events in 3 s at 20/s)`);
    await expectAllPanels(page, expected, "synthetic events at 20/s");

    // 4. Screenshot with a live feed, as CI's artifact: drop one panel so the resume shows in its list.
    await page.fill("#rate", "10");
    await page.dispatchEvent("#rate", "change");
    await page.waitForTimeout(2500);
    await page.click('[data-transport="sse"] button.drop');
    await page.waitForTimeout(2500);
    const shot = path.join(artifactDir, "demo.png");
    await page.screenshot({ path: shot, fullPage: true });
    log(`screenshot: ${shot}`);
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.waitForTimeout(500);
    const laptop = path.join(artifactDir, "demo-1280.png");
    await page.screenshot({ path: laptop });
    log(`screenshot: ${laptop} (first screen on a 1280×800 laptop)`);
    await page.click('[data-rate="0"]');
    await page.waitForFunction(() => document.querySelector("#generator-status").textContent.includes("stopped"));
    expected = await serverIds(topic, start);
    await expectAllPanels(page, expected, "final check after the screenshot");

    // The page's own claim: it never needs more than 5 of the browser's 6 HTTP/1.1 connections per origin.
    const pool = await page.evaluate(() => window.pushbench.pool);
    check(pool.peak >= 3 && pool.peak <= 5, `page used ${pool.peak} HTTP connections at its peak (want 3 to 5)`);
    log(`peak HTTP/1.1 connections held by the page: ${pool.peak} of 6`);

    check(pageErrors.length === 0, `the page reported errors:\n  ${pageErrors.join("\n  ")}`);
  } catch (err) {
    if (page) {
      const shot = path.join(artifactDir, "demo-failure.png");
      await page.screenshot({ path: shot, fullPage: true, timeout: 5000 }).then(
        () => console.error(`failure screenshot: ${shot}`),
        () => {},
      );
    }
    throw err;
  } finally {
    await browser.close();
  }
}

try {
  await main();
  log("PASS: browser demo test");
} catch (err) {
  console.error(`FAIL: ${err instanceof TestFailure ? err.message : err.stack || err}`);
  process.exitCode = 1;
}
