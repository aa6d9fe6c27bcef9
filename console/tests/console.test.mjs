// End-to-end: the real server (binary from RESCUE_SERVER_BIN) on a free port, driven
// through Debian's Chromium with playwright-core. Storage: a fresh SQLite file, or the
// PostgreSQL schema given by RESCUE_CONSOLE_DATABASE_URL + RESCUE_DATABASE_SCHEMA.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
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

test(`[${BACKEND}] a hotline case typed in by an agent is triaged and dispatched, live`, async () => {
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
  await page.locator("#in-coords").fill("31.2304, 121.4737");
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
  await page.locator("#intake-open").click();
  await page.locator('#timeline li[data-kind="offer_accepted"]').waitFor();
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
