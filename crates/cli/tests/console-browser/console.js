// Drives the duoprov daemon's console in headless Chromium (playwright-core, Debian's chromium).
// Run by crates/cli/tests/cli/console.rs, which starts a daemon against the emulator with data
// and a console token, then checks what this prints (one JSON object on standard output):
// every request the browser made, each page's status and text, the actions' outcomes.
//
// Environment: DUOPROV_CONSOLE_URL (the console, e.g. http://127.0.0.1:PORT),
// DUOPROV_CONSOLE_TOKEN, DUOPROV_SCREENSHOTS (a directory), DUOPROV_CHROMIUM (the executable),
// DUOPROV_PROVISIONER (the provisioner's name), DUOPROV_EXPLAIN_SUBJECT (a subject to explain
// and retry).
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

const base = process.env.DUOPROV_CONSOLE_URL;
const token = process.env.DUOPROV_CONSOLE_TOKEN;
const shots = process.env.DUOPROV_SCREENSHOTS;
const provisioner = process.env.DUOPROV_PROVISIONER;
const subject = process.env.DUOPROV_EXPLAIN_SUBJECT;
const out = { requests: [], pages: {}, links: {}, steps: {}, consoleErrors: [] };

async function visit(page, name, url) {
  const response = await page.goto(url);
  const status = response ? response.status() : 0;
  const text = await page.locator('body').innerText();
  out.pages[name] = { url: page.url(), status, text };
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  return status;
}

async function waitFor(page, url, selector, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    await page.goto(url);
    if (await page.locator(selector).count() > 0) return true;
    if (Date.now() > deadline) return false;
    await page.waitForTimeout(250);
  }
}

(async () => {
  fs.mkdirSync(shots, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'duoprov-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.DUOPROV_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    context.on('request', (r) => out.requests.push(r.url()));
    const page = context.pages()[0] || await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') out.consoleErrors.push(m.text()); });

    // Without the token: the pages send the browser to the sign-in form, an action is refused.
    await visit(page, 'login', `${base}/`);
    out.steps.unauthenticatedAction = (await context.request.post(`${base}/provisioners/${provisioner}/full-sync`, { form: { csrf: 'x' }, maxRedirects: 0 })).status();
    out.steps.unauthenticatedRetry = (await context.request.post(`${base}/provisioners/${provisioner}/retry`, { form: { csrf: 'x', kind: 'user', object: subject }, maxRedirects: 0 })).status();
    // A wrong token is refused; the right one signs in.
    await page.fill('input[name=token]', 'not-the-console-token-0000');
    await page.click('button[type=submit]');
    out.steps.wrongToken = await page.locator('body').innerText();
    // That answer was a 401, which Chromium reports as an error; the errors counted start here.
    out.steps.errorsBeforeSignIn = out.consoleErrors.splice(0);
    await page.goto(`${base}/login`);
    await page.fill('input[name=token]', token);
    await Promise.all([page.waitForURL(`${base}/`), page.click('button[type=submit]')]);
    const cookies = await context.cookies();
    out.steps.cookie = cookies.filter((c) => c.name === 'duoprov_console').map((c) => ({ httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure }));

    // The refused plan appears on the provisioner's page (the test made the registry drop the group).
    const provisionerUrl = `${base}/provisioners/${provisioner}`;
    out.steps.refusalShown = await waitFor(page, provisionerUrl, 'form[action$="/approve"] button', 60);

    // The explain page, from the navigation's form; then a retry of the subject from it.
    await page.goto(`${base}/`);
    await Promise.all([page.waitForNavigation(), page.click('nav a[href="/explain"]')]);
    await page.fill('input[name=subject]', subject);
    await Promise.all([page.waitForNavigation(), page.click('form[action="/explain"] button')]);
    out.pages.explain = { url: page.url(), status: 200, text: await page.locator('body').innerText() };
    await page.screenshot({ path: path.join(shots, 'explain.png'), fullPage: true });
    out.steps.retryNoCsrf = (await context.request.post(`${provisionerUrl}/retry`, { form: { csrf: 'forged', kind: 'user', object: subject }, maxRedirects: 0 })).status();
    await Promise.all([page.waitForNavigation(), page.click('form[action$="/retry"] button')]);
    out.steps.retryShown = await waitFor(page, provisionerUrl, `td:has-text("retry of subject local:${subject}: run")`, 60);
    await visit(page, 'after_retry', provisionerUrl);

    await visit(page, 'overview', `${base}/`);
    // Every console link on the overview answers (the status endpoints need the metrics token).
    const hrefs = await page.$$eval('main a[href], nav a[href]', (as) => as.map((a) => a.href));
    for (const h of [...new Set(hrefs)]) {
      const r = await context.request.get(h);
      out.links[h] = r.status();
    }
    await visit(page, 'provisioner', provisionerUrl);
    await visit(page, 'runs', `${provisionerUrl}/runs`);
    const runHref = await page.locator('main table a[href^="/runs/"]').first().getAttribute('href');
    await page.click(`main table a[href="${runHref}"]`);
    out.pages.run = { url: page.url(), status: 200, text: await page.locator('body').innerText() };
    await page.screenshot({ path: path.join(shots, 'run.png'), fullPage: true });
    await visit(page, 'duo_users', `${base}/duo-users`);
    const csvHref = await page.locator('a[href^="/duo-users.csv"]').getAttribute('href');
    const csv = await context.request.get(`${base}${csvHref}`);
    out.steps.csv = { status: csv.status(), type: csv.headers()['content-type'], text: await csv.text() };
    await page.check('input[name=not_enrolled]');
    await Promise.all([page.waitForNavigation(), page.click('form[action="/duo-users"] button')]);
    out.pages.duo_users_filtered = { url: page.url(), status: 200, text: await page.locator('body').innerText() };

    // Search the links.
    await page.goto(provisionerUrl);
    await page.fill('input[name=q]', 'mchy');
    await page.selectOption('select[name=kind]', 'users');
    await Promise.all([page.waitForNavigation(), page.click('form[method=get] button')]);
    out.pages.search = { url: page.url(), status: 200, text: await page.locator('main form[method=get] + table').innerText() };

    // An action from the session without its CSRF token is refused.
    out.steps.noCsrf = (await context.request.post(`${provisionerUrl}/full-sync`, { form: { csrf: 'forged' }, maxRedirects: 0 })).status();
    // The actions, by clicking.
    await page.goto(provisionerUrl);
    await Promise.all([page.waitForNavigation(), page.click('form[action$="/full-sync"] button')]);
    await Promise.all([page.waitForNavigation(), page.click('form[action$="/approve"] button')]);
    await visit(page, 'after_actions', provisionerUrl);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
