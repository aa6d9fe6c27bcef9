// End-to-end: the real server (binary from RESCUE_SERVER_BIN) on a free port, driven
// through Debian's Chromium with playwright-core. Storage: a fresh SQLite file, or the
// PostgreSQL schema given by RESCUE_CONSOLE_DATABASE_URL + RESCUE_DATABASE_SCHEMA.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const ADMIN = "console-test-admin-token-0123456789abcdef";
const PASSWORD = "console-test-password";
const OUTPUT = process.env.RESCUE_CONSOLE_OUTPUT || join(process.cwd(), "test-output");
const BACKEND = process.env.RESCUE_CONSOLE_DATABASE_URL ? "postgres" : "sqlite";

let server;
let base;
let browser;
let serverLog = "";

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

async function call(method, path, token, body) {
  const headers = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function until(what, check, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

before(async () => {
  const binary = process.env.RESCUE_SERVER_BIN;
  assert.ok(binary, "RESCUE_SERVER_BIN must name the dispatcher binary");
  const dir = mkdtempSync(join(tmpdir(), "rescue-console-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    RESCUE_LISTEN: `127.0.0.1:${port}`,
    RESCUE_ADMIN_TOKEN: ADMIN,
    RESCUE_SECRET_KEY_FILE: join(dir, "rescue.key"),
    RESCUE_LOGIN_RATE_PER_MIN: "1000",
    RESCUE_JT808_ADDR: "127.0.0.1:0",
    RESCUE_GT06_ADDR: "127.0.0.1:0",
    DATABASE_URL: process.env.RESCUE_CONSOLE_DATABASE_URL || `sqlite://${join(dir, "rescue.db")}`,
    RESCUE_LOG_FORMAT: "json",
    RESCUE_PHONE_POOL: "+861095500001,+861095500002",
  };
  delete env.REDIS_URL;
  server = spawn(binary, ["serve"], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  server.stdout.on("data", (chunk) => (serverLog += chunk));
  server.stderr.on("data", (chunk) => (serverLog += chunk));
  await until(
    "the server to be ready",
    async () => {
      if (server.exitCode !== null) throw new Error(`server exited:\n${serverLog}`);
      try {
        return (await fetch(`${base}/readyz`)).ok;
      } catch {
        return false;
      }
    },
    60000,
  );
  for (const [username, role] of [
    ["console-agent", "agent"],
    ["console-expert", "expert"],
  ]) {
    const reply = await call("POST", "/v1/admin/users", ADMIN, {
      username,
      password: PASSWORD,
      role,
      skills: ["key_fob"],
    });
    assert.equal(reply.status, 201, JSON.stringify(reply.body));
  }
  browser = await chromium.launch({
    executablePath: process.env.RESCUE_CHROMIUM || "/usr/bin/chromium",
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
      "--disable-background-networking", "--no-first-run"],
  });
  mkdirSync(OUTPUT, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    await new Promise((resolve) => server.once("exit", resolve));
  }
});

async function loggedIn(username, locale = "en-US") {
  const context = await browser.newContext({ locale, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(error.message));
  await page.goto(`${base}/console/`);
  await page.locator("#username").fill(username);
  await page.locator("#password").fill(PASSWORD);
  await page.locator("#login-form button[type=submit]").click();
  return { context, page, problems };
}

test(`[${BACKEND}] a wrong password is refused on the login form`, async () => {
  const context = await browser.newContext({ locale: "en-US" });
  const page = await context.newPage();
  await page.goto(`${base}/console/`);
  await page.locator("#username").fill("console-agent");
  await page.locator("#password").fill("not-the-password");
  await page.locator("#login-form button[type=submit]").click();
  await page.locator("#login-error", { hasText: "Wrong username or password" }).waitFor();
  assert.equal(await page.locator("#board-view").isHidden(), true);
  await context.close();
});

test(`[${BACKEND}] an alert raised through the API reaches the board live, is acknowledged and lands in the timeline`, async () => {
  const { context, page, problems } = await loggedIn("console-agent");
  await page.locator("#board-view").waitFor();
  await page.locator("#conn[data-state=on]").waitFor({ timeout: 5000 });

  // A hotline case where no truck exists: dispatch finds nobody and raises `no_vehicle`.
  const agentToken = (await call("POST", "/v1/auth/login", null, {
    username: "console-agent",
    password: PASSWORD,
  })).body.token;
  const created = await call("POST", "/v1/cases", agentToken, {
    channel: "hotline",
    customer: { name: "韩梅梅", phone: "+8613900139000", plate: "沪C12345" },
    location: { lat: 31.2304, lon: 121.4737, crs: "wgs84", address: "人民广场", road_kind: "urban" },
    fault: { category: "battery", symptoms: ["no_crank"], description: "dead battery" },
    service: "jump_start",
    safety: { accident: true, injury: false, smoke_or_fire: false, vulnerable_customer: false, requests_vehicle: false },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const caseId = created.body.case.id;
  const alert = await until("the no_vehicle alert", async () => {
    const list = await call("GET", "/v1/alerts?state=open", agentToken);
    return list.body.alerts.find((found) => found.case_id === caseId);
  });
  const raisedAt = Date.now();
  const row = page.locator(`#board-rows tr[data-alert-id="${alert.id}"]`);
  await row.waitFor({ timeout: 2000 });
  const seenAfterMs = Date.now() - raisedAt;
  assert.ok(seenAfterMs <= 2000, `on the board after ${seenAfterMs} ms`);
  assert.match(await row.innerText(), /no_vehicle/);
  await page.screenshot({ path: join(OUTPUT, `board-${BACKEND}.png`), fullPage: true });

  // Acknowledge with the row's button (the keyboard is tested below).
  await row.getByRole("button", { name: "Acknowledge" }).click();
  await until("the acknowledgement", async () => {
    const list = await call("GET", "/v1/alerts?state=acknowledged", agentToken);
    return list.body.alerts.some((found) => found.id === alert.id);
  });
  await row.getByRole("button", { name: "Open" }).click();
  await page.locator("#case-view").waitFor();
  await page.locator('#timeline li[data-kind="alert_acknowledged"]').waitFor();
  assert.equal(await page.locator("#case-id").innerText(), caseId);
  await page.screenshot({ path: join(OUTPUT, `case-${BACKEND}.png`), fullPage: true });

  // The server's own record agrees.
  const timeline = await call("GET", `/v1/cases/${caseId}/timeline`, agentToken);
  assert.ok(timeline.body.events.some((event) => event.kind === "alert_acknowledged"));
  assert.deepEqual(problems, []);
  await context.close();
});

test(`[${BACKEND}] the keyboard resolves the selected alert`, async () => {
  const { context, page } = await loggedIn("console-agent");
  await page.locator("#board-view").waitFor();
  const first = page.locator("#board-rows tr").first();
  await first.waitFor();
  const alertId = await first.getAttribute("data-alert-id");
  await page.keyboard.press("r");
  await page.locator(`#board-rows tr[data-alert-id="${alertId}"]`).waitFor({ state: "detached" });
  await context.close();
});

test(`[${BACKEND}] Chinese is the default for a browser that prefers it, and English is one click away`, async () => {
  const { context, page } = await loggedIn("console-agent", "zh-CN");
  await page.locator("#board-view h1", { hasText: "未处理告警" }).waitFor();
  await page.locator("#lang").click();
  await page.locator("#board-view h1", { hasText: "Open alerts" }).waitFor();
  await page.locator("#logout").click();
  await page.locator("#login-view").waitFor();
  // The session is gone on the server too.
  const me = await page.evaluate(async () => (await fetch("/v1/auth/me")).status);
  assert.equal(me, 401);
  await context.close();
});

test(`[${BACKEND}] a state-changing request from another origin is refused even with the cookie`, async () => {
  const { context, page } = await loggedIn("console-agent");
  await page.locator("#board-view").waitFor();
  const cookies = await context.cookies();
  const session = cookies.find((cookie) => cookie.name === "rescue_session");
  assert.ok(session, "login set the session cookie");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
  const reply = await fetch(`${base}/v1/auth/logout`, {
    method: "POST",
    headers: { cookie: `rescue_session=${session.value}`, origin: "http://evil.example" },
  });
  assert.equal(reply.status, 403);
  await context.close();
});

// Clicks the Leaflet map in `selector` at a geographic point (through the page's own map).
async function clickMapAt(page, selector, mapName, lat, lon) {
  const point = await page.evaluate(([name, lat, lon]) => {
    const map = state[name];
    const { x, y } = map.latLngToContainerPoint([lat, lon]);
    return { x, y };
  }, [mapName, lat, lon]);
  const box = await page.locator(selector).boundingBox();
  await page.mouse.click(box.x + point.x, box.y + point.y);
}

test(`[${BACKEND}] a hotline case placed on the map by an agent is triaged and dispatched, live`, async () => {
  // A tow company with one truck near People's Square.
  const provider = await call("POST", "/v1/admin/providers", ADMIN, {
    name: "Console Towing",
    service_area: { type: "Polygon", coordinates: [[[121.3, 31.0], [121.8, 31.0], [121.8, 31.4], [121.3, 31.4], [121.3, 31.0]]] },
  });
  assert.equal(provider.status, 201, JSON.stringify(provider.body));
  const key = provider.body.api_key;
  const vehicle = await call("PUT", "/v1/provider/vehicles/C1", key, { capabilities: ["tow", "jump_start"], state: "available" });
  assert.ok(vehicle.status < 300, JSON.stringify(vehicle.body));
  const fix = await call("POST", "/v1/provider/positions", key, {
    fixes: [{ vehicle_id: "C1", lat: 31.2404, lon: 121.4737, ts: new Date().toISOString(), speed_kmh: 0, heading: 0 }],
  });
  assert.equal(fix.body.accepted, 1, JSON.stringify(fix.body));

  const { context, page, problems } = await loggedIn("console-agent");
  await page.locator("#board-view").waitFor();
  await page.locator("#nav button[data-view=intake-view]").click();
  await page.locator("#in-name").fill("王小明");
  await page.locator("#in-phone").fill("+8613700137000");
  await page.locator("#in-coords").fill("bad");
  await page.locator("#intake-form button[type=submit]").click();
  await page.locator("#intake-error", { hasText: "latitude, longitude" }).waitFor();
  // The caller is at People's Square: the agent clicks it on the map.
  await page.locator("#intake-map.leaflet-container").waitFor();
  await clickMapAt(page, "#intake-map", "intakeMap", 31.2304, 121.4737);
  const typed = (await page.locator("#in-coords").inputValue()).split(",").map(Number);
  assert.ok(Math.abs(typed[0] - 31.2304) < 0.002 && Math.abs(typed[1] - 121.4737) < 0.002, `picked ${typed}`);
  await page.locator("#in-fault").selectOption("accident");
  await page.locator("#in-service").selectOption("tow");
  await page.locator("#in-accident").check();
  await page.locator("#intake-form button[type=submit]").click();
  await page.locator("#intake-triage[data-outcome=needs_vehicle]").waitFor({ timeout: 5000 });
  const caseId = await page.locator("#intake-case").innerText();

  // The truck's company accepts the offer; the intake view follows without a reload.
  const offer = await until("the offer", async () => {
    const offers = await call("GET", "/v1/provider/offers", key);
    return offers.body.offers.find((found) => found.case_id === caseId);
  });
  const accepted = await call("POST", `/v1/provider/offers/${offer.id}/accept`, key, {});
  assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
  await page
    .locator("#intake-status[data-status=assigned]")
    .waitFor({ timeout: 5000 })
    .catch(async (error) => {
      const status = await page.locator("#intake-status").innerText();
      const agent = (await call("POST", "/v1/auth/login", null, { username: "console-agent", password: PASSWORD })).body.token;
      const server = await call("GET", `/v1/cases/${caseId}/timeline`, agent);
      throw new Error(`${error.message}; page shows ${status}; server ${JSON.stringify(server.body)}`);
    });
  // The truck drives towards the caller, a fix a second, until the server has its path.
  const agent = (await call("POST", "/v1/auth/login", null, { username: "console-agent", password: PASSWORD })).body.token;
  let step = 0;
  await until("the truck's trajectory", async () => {
    step += 1;
    await call("POST", "/v1/provider/positions", key, {
      fixes: [{ vehicle_id: "C1", lat: 31.2404 - step * 0.0001, lon: 121.4737, ts: new Date().toISOString(), speed_kmh: 40, heading: 180 }],
    });
    await new Promise((resolve) => setTimeout(resolve, 900));
    const path = await call("GET", `/v1/cases/${caseId}/trajectory`, agent);
    const line = (path.body.features || []).find((feature) => feature.geometry && feature.geometry.type === "LineString");
    return line && line.geometry.coordinates.length >= 2;
  }, 20000);
  await page.locator("#intake-open").click();
  await page.locator('#timeline li[data-kind="offer_accepted"]').waitFor();
  await page.locator('#timeline li[data-kind="candidates_ranked"] ol li').first().waitFor();
  await page.locator('#case-map[data-line-to-customer="1"]').waitFor({ timeout: 8000 });
  assert.ok(Number(await page.locator("#case-map").getAttribute("data-trajectory-points")) >= 2);

  // Agent actions on the case: a note, an update for the customer, a masked call.
  await page.locator("#note-text").fill("caller waits behind the guard rail");
  await page.locator("#note-add").click();
  await page.locator('#timeline li[data-kind="note_added"]', { hasText: "guard rail" }).waitFor();
  await page.locator("#notify-text").fill("The truck is 5 minutes away.");
  await page.locator("#notify-send").click();
  await page.locator('#timeline li[data-kind="customer_notified"]').waitFor();
  await page.locator("#agent-phone").fill("+861088880002");
  await page.locator("#call-customer").click();
  await page.locator('#case-message[data-action=call][data-result=ok]', { hasText: "+86109550000" }).waitFor();
  // The vehicle has no driver phone: the console says so instead of failing silently.
  await page.locator("#call-driver").click();
  await page.locator("#case-message[data-result=error]", { hasText: "driver phone" }).waitFor();
  await page.screenshot({ path: join(OUTPUT, `case-map-${BACKEND}.png`), fullPage: true });
  assert.deepEqual(problems, []);
  await context.close();
});

test(`[${BACKEND}] an escalated case is assigned by hand from the nearest candidates`, async () => {
  // A case in Hangzhou, where nobody works yet: it escalates.
  const created = await call("POST", "/v1/cases", null, {
    channel: "app",
    customer: { name: "赵六", phone: "+8613600136000" },
    location: { lat: 30.2741, lon: 120.1551, crs: "wgs84", road_kind: "urban" },
    fault: { category: "tyre", symptoms: ["flat"] },
    service: "tyre_change",
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const caseId = created.body.case.id;
  const agentToken = (await call("POST", "/v1/auth/login", null, { username: "console-agent", password: PASSWORD })).body.token;
  await until("the escalation", async () => (await call("GET", `/v1/cases/${caseId}`, agentToken)).body.status === "escalated");
  const provider = await call("POST", "/v1/admin/providers", ADMIN, {
    name: "West Lake Rescue",
    service_area: { type: "Polygon", coordinates: [[[119.9, 30.1], [120.4, 30.1], [120.4, 30.5], [119.9, 30.5], [119.9, 30.1]]] },
  });
  const key = provider.body.api_key;
  for (const [id, lat] of [["HZ-NEAR", 30.2831], ["HZ-FAR", 30.3101]]) {
    const put = await call("PUT", `/v1/provider/vehicles/${id}`, key, { capabilities: ["tyre_change"], state: "available", plate: `浙A${id.length}0001` });
    assert.ok(put.status < 300, JSON.stringify(put.body));
  }
  const fixes = await call("POST", "/v1/provider/positions", key, {
    fixes: [["HZ-NEAR", 30.2831], ["HZ-FAR", 30.3101]].map(([id, lat]) => ({ vehicle_id: id, lat, lon: 120.1551, ts: new Date().toISOString() })),
  });
  assert.equal(fixes.body.accepted, 2, JSON.stringify(fixes.body));

  const { context, page, problems } = await loggedIn("console-agent");
  await page.locator("#board-view").waitFor();
  await page.locator(`#board-rows tr[data-case-id="${caseId}"]`).getByRole("button", { name: "Open" }).click();
  await page.locator("#case-view[data-status=escalated]").waitFor();
  assert.equal(await page.locator("#case-redispatch").isVisible(), true);
  const rows = page.locator("#candidate-rows tr");
  await rows.nth(1).waitFor();
  assert.deepEqual(
    await rows.evaluateAll((found) => found.map((row) => row.dataset.vehicleRef)),
    ["HZ-NEAR", "HZ-FAR"],
  );
  assert.match(await rows.first().innerText(), /West Lake Rescue/);
  // The agent knows HZ-FAR's driver is free now and picks it.
  await rows.nth(1).getByRole("button", { name: "Assign" }).click();
  await page.locator("#case-view[data-status=assigned]").waitFor();
  await page.locator('#timeline li[data-kind="vehicle_assigned"]').waitFor();
  await page.locator("#candidates-box").waitFor({ state: "hidden" });
  const offers = await call("GET", "/v1/provider/offers", key);
  const job = (await call("GET", `/v1/cases/${caseId}/offers`, agentToken)).body.offers.find((offer) => offer.state === "accepted");
  assert.ok(job, JSON.stringify(offers.body));
  const far = await call("GET", "/v1/provider/vehicles/HZ-FAR", key);
  assert.equal(job.vehicle_id, far.body.id);
  assert.deepEqual(problems, []);
  await context.close();
});

test(`[${BACKEND}] the live map draws 2,000 trucks on a canvas with their states, the open cases and the service areas`, async () => {
  const provider = await call("POST", "/v1/admin/providers", ADMIN, {
    name: "Big City Towing",
    service_area: { type: "Polygon", coordinates: [[[121.2, 31.05], [121.75, 31.05], [121.75, 31.4], [121.2, 31.4], [121.2, 31.05]]] },
  });
  assert.equal(provider.status, 201, JSON.stringify(provider.body));
  const key = provider.body.api_key;
  const trucks = 2000;
  const offline = 50;
  // Seeded (mulberry32), so every run draws the same city.
  let seed = 20261202;
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const ids = Array.from({ length: trucks }, (_, index) => `BIG-${String(index).padStart(4, "0")}`);
  // Registration, eight at a time; then the positions in batches of 1,000.
  for (let index = 0; index < ids.length; index += 8) {
    await Promise.all(ids.slice(index, index + 8).map(async (id, offset) => {
      const put = await call("PUT", `/v1/provider/vehicles/${id}`, key, {
        capabilities: ["tow"], state: index + offset < offline ? "offline" : "available",
      });
      assert.ok(put.status < 300, JSON.stringify(put.body));
    }));
  }
  const now = new Date().toISOString();
  for (let index = 0; index < ids.length; index += 1000) {
    const fixes = ids.slice(index, index + 1000).map((id) => (
      { vehicle_id: id, lat: 31.12 + random() * 0.22, lon: 121.3 + random() * 0.36, ts: now }
    ));
    const reply = await call("POST", "/v1/provider/positions", key, { fixes });
    assert.equal(reply.body.accepted, fixes.length, JSON.stringify(reply.body).slice(0, 500));
  }

  const { context, page, problems } = await loggedIn("console-agent");
  await page.locator("#board-view").waitFor();
  await page.locator("#nav button[data-view=map-view]").click();
  const stats = page.locator("#map-stats[data-state=ok]");
  await stats.waitFor({ timeout: 10000 });
  const total = await until("the whole fleet on the map", async () => {
    const shown = Number(await page.locator("#map-stats").getAttribute("data-total"));
    return shown >= trucks ? shown : 0;
  });
  assert.ok(total >= trucks, `${total} trucks`);
  const legend = await page.locator("#map-stats").innerText();
  assert.match(legend, new RegExp(`offline ${offline}(?!\\d)`), legend);
  // One canvas draws every marker: no DOM element per truck.
  assert.equal(await page.locator("#fleet-map canvas").count(), 1);
  assert.equal(await page.locator("#fleet-map .leaflet-marker-icon, #fleet-map svg path").count(), 0);
  await until("the service areas", async () => Number(await page.locator("#fleet-map").getAttribute("data-areas")) >= 1);
  await until("the open cases", async () => Number(await page.locator("#fleet-map").getAttribute("data-cases")) >= 1);

  // Frame times while the map pans across the whole fleet: written out, not asserted
  // (performance is measured, never asserted, in tests).
  const frames = await page.evaluate(async () => {
    const map = state.fleetMap;
    const gaps = [];
    let last = performance.now();
    let running = true;
    const tick = (now) => {
      gaps.push(now - last);
      last = now;
      if (running) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    for (let step = 0; step < 20; step += 1) {
      map.panBy([step % 2 ? -120 : 120, 40 * (step % 3 - 1)], { animate: true, duration: 0.25 });
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    running = false;
    gaps.sort((a, b) => a - b);
    return { frames: gaps.length, median_ms: gaps[Math.floor(gaps.length / 2)], p95_ms: gaps[Math.floor(gaps.length * 0.95)], max_ms: gaps[gaps.length - 1] };
  });
  console.log(`[${BACKEND}] map with ${total} trucks, panning: ${JSON.stringify(frames)}`);
  writeFileSync(join(OUTPUT, `map-frames-${BACKEND}.json`), JSON.stringify({ trucks: total, ...frames }, null, 2));
  await page.evaluate(() => state.fleetMap.setView([31.23, 121.47], 11, { animate: false }));
  await page.waitForTimeout(500);
  await page.screenshot({ path: join(OUTPUT, `map-${BACKEND}.png`) });
  assert.deepEqual(problems, []);
  await context.close();
});

test(`[${BACKEND}] an expert claims a phone-solvable case and solves it`, async () => {
  const created = await call("POST", "/v1/cases", null, {
    channel: "app",
    customer: { name: "李雷", phone: "+8613800138000", plate: "沪B67890" },
    location: { lat: 31.2304, lon: 121.4737, crs: "wgs84", road_kind: "urban" },
    fault: { category: "key_fob", symptoms: ["key_not_detected"] },
    service: "tow",
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const caseId = created.body.case.id;
  const expertToken = (await call("POST", "/v1/auth/login", null, { username: "console-expert", password: PASSWORD })).body.token;
  await until("the ticket", async () => {
    const queue = await call("GET", "/v1/diagnosis/queue", expertToken);
    return queue.body.tickets.some((ticket) => ticket.case_id === caseId);
  });

  const { context, page, problems } = await loggedIn("console-expert");
  await page.locator("#expert-view").waitFor();
  assert.equal(await page.locator("#nav").isHidden(), true, "experts do not get the agent's screens");
  await page.locator("#claim").click();
  await page.locator("#ticket").waitFor();
  assert.match(await page.locator("#ticket-details").innerText(), /key_fob/);
  await page.locator("#ticket-notes").fill("walked the caller through the fob reset");
  await page.locator("#solve").click();
  await page.locator("#ticket-outcome[data-outcome=solve]").waitFor();
  await page.screenshot({ path: join(OUTPUT, `expert-${BACKEND}.png`), fullPage: true });
  const agentToken = (await call("POST", "/v1/auth/login", null, { username: "console-agent", password: PASSWORD })).body.token;
  const found = await call("GET", `/v1/cases/${caseId}`, agentToken);
  assert.equal(found.body.status, "resolved_remotely");
  assert.deepEqual(problems, []);
  await context.close();
});

test("the vendored Leaflet is the npm package's own build, byte for byte", () => {
  for (const file of ["leaflet.js", "leaflet.css"]) {
    const vendored = readFileSync(new URL(`../static/vendor/leaflet-1.9.4/${file}`, import.meta.url));
    const packaged = readFileSync(new URL(`../node_modules/leaflet/dist/${file}`, import.meta.url));
    assert.ok(vendored.equals(packaged), `${file} differs from node_modules/leaflet/dist`);
  }
  const manifest = JSON.parse(readFileSync(new URL("../node_modules/leaflet/package.json", import.meta.url)));
  assert.equal(manifest.version, "1.9.4", "the vendor path names the version");
});
