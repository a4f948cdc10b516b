// Drives Debian's Chromium through the claimd console, as an administrator would: sign in,
// add a domain, copy its record, publish it, check, verify, claim, unclaim, unverify, sign
// out; and the refusals (a wrong credential, a form post without its CSRF token, another
// organization's domain). Every page is checked for accessibility (axe-core, WCAG 2.1 A/AA)
// and saved as a screenshot.
//
// Run by the e2e test `console` (crates/claimd/tests/e2e/console.rs), which starts Knot DNS
// and claimd and answers this script's requests on stdin: the script writes
// `publish <name> <value>` and waits for `ok`, once the TXT record is live.
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";
import { createInterface } from "node:readline";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("CLAIMD_URL");
const token = env("CLAIMD_TOKEN");
const org = env("CLAIMD_ORG");
const domain = env("CONSOLE_DOMAIN");
const otherDomainId = env("OTHER_DOMAIN_ID");
const shots = env("SCREENSHOTS");
mkdirSync(shots, { recursive: true });

const axe = readFileSync(new URL("./node_modules/axe-core/axe.min.js", import.meta.url), "utf8");
const lines = createInterface({ input: process.stdin });
const stdin = lines[Symbol.asyncIterator]();

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function ask(request) {
  process.stdout.write(`${request}\n`);
  const { value, done } = await stdin.next();
  check(!done && value.trim() === "ok", `the driver answered ${JSON.stringify(value)} to ${request}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
});
try {
  await run();
  console.log("console: every step passed");
} finally {
  await browser.close();
  lines.close();
}

async function run() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();
  const failures = [];
  // Script errors and refused content (CSP); not the statuses of pages that are refusals.
  page.on("pageerror", (e) => failures.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) failures.push(m.text());
  });
  page.on("response", (r) => {
    if (!r.url().includes("/console/") || r.request().resourceType() !== "document") {
      if (r.status() >= 400) failures.push(`${r.url()} answered ${r.status()}`);
    }
  });
  let shot = 0;

  // Saves the page, and fails on any WCAG 2.1 A/AA violation axe-core finds.
  async function look(name) {
    await page.screenshot({ path: `${shots}/${String(++shot).padStart(2, "0")}-${name}.png`, fullPage: true });
    await page.evaluate(axe);
    const result = await page.evaluate(() =>
      window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] }),
    );
    const violations = result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(" ")}`);
    check(violations.length === 0, `${name}: accessibility violations: ${violations.join("; ")}`);
  }
  const heading = async () => (await page.locator("h1").innerText()).trim();
  const flash = async () => (await page.locator(".flash").innerText()).trim();

  // Signed out, every page leads to the sign-in form; the skip link comes first.
  await page.goto(`${base}/console/`);
  check(page.url().endsWith("/console/login"), `not sent to sign in: ${page.url()}`);
  await page.keyboard.press("Tab");
  check((await page.evaluate(() => document.activeElement.textContent)) === "Skip to content", "the skip link is not first");
  await look("sign-in");

  // A wrong credential is refused with the API's words.
  await page.fill("#token", "claimd_not-a-real-credential");
  const refused = await Promise.all([page.waitForResponse((r) => r.url().endsWith("/console/login") && r.request().method() === "POST"), page.click("button[type=submit]")]);
  check(refused[0].status() === 401, `wrong token answered ${refused[0].status()}`);
  check((await page.locator("#login-error").innerText()).includes("unknown, expired or revoked"), "no reason for the refusal");
  await look("sign-in-refused");

  // Sign in.
  await page.fill("#token", token);
  await page.click("form.card button[type=submit]");
  check(page.url().endsWith("/console/domains"), `not on the domains page: ${page.url()}`);
  check((await heading()) === "Domains", "no domains heading");
  const cookie = (await context.cookies()).find((c) => c.name === "claimd_session");
  check(cookie && cookie.httpOnly && cookie.sameSite === "Strict" && cookie.path === "/console", `session cookie: ${JSON.stringify(cookie)}`);
  await look("domains-empty");

  // A form post without the session's CSRF token changes nothing.
  const forged = `forged.${domain}`;
  for (const form of [{ domain: forged }, { domain: forged, csrf: "guessed" }]) {
    const r = await page.request.post(`${base}/console/domains`, { form, maxRedirects: 0 });
    check(r.status() === 403, `a post without the CSRF token answered ${r.status()}`);
    check((await r.text()).includes("CSRF"), "the refusal does not say why");
  }
  await page.reload();
  check(!(await page.content()).includes(forged), "the forged post added a domain");

  // Add the domain: its page shows the exact record, and the copy button copies it.
  await page.fill("#domain", domain);
  await page.click("form.add button[type=submit]");
  check(/\/console\/domains\/[A-Za-z0-9_=-]+$/.test(page.url()), `not on the domain's page: ${page.url()}`);
  check((await flash()).includes("added"), `no confirmation: ${await flash()}`);
  const value = await page.inputValue("#txt-value");
  check(value.startsWith("cisco-ci-domain-verification="), `record value: ${value}`);
  check((await page.inputValue("#txt-zone")) === `${domain}. 3600 IN TXT "${value}"`, "zone-file line");
  check((await page.inputValue("#txt-host")) === domain, "host");
  await page.click("button[data-copy=txt-value]");
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  check(copied === value, `copied ${JSON.stringify(copied)}, not the record`);
  const domainPage = page.url();
  await look("domain-pending");

  // Checked before it is published: the explanation says what the resolvers saw.
  await page.click("text=Check now");
  check((await page.locator("#check").innerText()).includes("not there yet"), "an unpublished record passed the check");
  check((await page.locator("#dig").inputValue()).includes("dig"), "no dig line");
  await look("check-missing");

  // Publish it, check again.
  await ask(`publish ${domain} ${value}`);
  await page.click("text=Check now");
  check((await page.locator("#check").innerText()).includes("is published"), `the check failed: ${await page.locator("#check-result").innerText()}`);
  check((await page.locator("#check-result").innerText()).includes(value), "the check does not show the value seen");
  await look("check-published");

  // Each action asks first and says what it will do, then does it.
  async function act(link, expectFlash, expectBadge) {
    await page.click(`a.button:text-is("${link}")`);
    check((await heading()) === link, `confirmation of ${link}: ${await heading()}`);
    check((await page.locator(".consequence").innerText()).includes(domain), `${link}: consequence does not name the domain`);
    await look(`confirm-${link.toLowerCase()}`);
    await page.click(`form.card button[type=submit]`);
    check((await flash()).includes(expectFlash), `${link}: ${await flash()}`);
    if (expectBadge) {
      check((await page.locator("h1 .badge").innerText()) === expectBadge, `${link}: badge ${await page.locator("h1 .badge").innerText()}`);
    }
  }
  await act("Verify", "is verified", "Verified");

  // The domain's page lists the organization's users with addresses in it (SCIM's users).
  const created = await page.request.post(`${base}/identity/scim/${org}/v2/Users`, {
    headers: { authorization: `Bearer ${token}`, "content-type": "application/scim+json" },
    data: JSON.stringify({ schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName: `pat@${domain}`, displayName: "Pat" }),
  });
  check(created.status() === 201, `creating a user answered ${created.status()}`);
  await page.reload();
  const users = await page.locator("section[aria-labelledby=users]").innerText();
  check(users.includes(`pat@${domain}`) && users.includes("active"), `users section: ${users}`);
  await act("Claim", "is claimed", "Claimed");
  await look("domain-claimed");
  await page.goto(`${base}/console/domains`);
  check((await page.locator("td[data-label=Status] .badge").first().innerText()) === "Claimed", "the list does not show the claim");
  await look("domains-claimed");
  await page.goto(domainPage);
  await act("Unclaim", "no longer claimed", "Verified");
  const history = await page.locator("section[aria-labelledby=history] tbody tr").count();
  check(history >= 4, `history shows ${history} events`);
  await act("Unverify", "no longer verified", null);
  check(page.url().endsWith("/console/domains"), `after unverify: ${page.url()}`);
  await look("domains-after");

  // Another organization's domain is not found, as if it did not exist.
  const other = await page.goto(`${base}/console/domains/${otherDomainId}`);
  check(other.status() === 404, `another organization's domain answered ${other.status()}`);
  check((await heading()) === "Not found", "no not-found page");
  check(!(await page.content()).includes("other-org"), "the not-found page leaks the domain");
  await look("not-found");

  // A phone's width: nothing wider than the screen.
  await page.setViewportSize({ width: 375, height: 800 });
  await page.goto(domainPage);
  await page.goto(`${base}/console/domains`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the domains page is ${overflow}px wider than a phone`);
  await look("domains-phone");
  await page.setViewportSize({ width: 1280, height: 900 });

  // Sign out: the session is over on the server, even for a copy of its cookie.
  const session = await context.cookies();
  await page.click("text=Sign out");
  check(page.url().endsWith("/console/login"), `after sign-out: ${page.url()}`);
  await context.addCookies(session);
  await page.goto(`${base}/console/domains`);
  check(page.url().endsWith("/console/login"), "the old session still works");

  // Through the identity provider: a refusal there comes back as a refusal here; a forged
  // return is refused; an approval signs in a read-only administrator, whom the console lets
  // look but not change (the API's own refusal).
  await page.goto(`${base}/console/login`);
  await page.click("text=Sign in with your identity provider");
  check((await heading()) === "Sign in to claimd?", `not at the provider: ${page.url()}`);
  await page.click("button[value=deny]");
  check(page.url().includes("/console/"), `not back from the provider: ${page.url()}`);
  check((await page.locator("#login-error").innerText()).includes("access_denied"), "the provider's refusal is not shown");
  const forgedReturn = await page.goto(`${base}/console/oidc/callback?code=stolen&state=guessed`);
  check(forgedReturn.status() === 403, `a forged return answered ${forgedReturn.status()}`);
  await page.goto(`${base}/console/login`);
  await page.click("text=Sign in with your identity provider");
  await page.click("button[value=approve]");
  await page.waitForURL(/\/console\/domains$/);
  check((await page.locator(".who").innerText()).includes("alice@idp.test"), "not signed in as the provider's person");
  check((await page.content()).includes(domain), "the read-only administrator does not see the domains");
  await page.fill("#domain", `readonly.${domain}`);
  await page.click("form.add button[type=submit]");
  check((await flash()).includes("lacks a required"), `a read-only sign-in could add a domain: ${await flash()}`);
  await look("signed-in-through-provider");
  await page.click("text=Sign out");

  // Without JavaScript, signing in and the domains page still work.
  const plain = await browser.newContext({ javaScriptEnabled: false });
  const p = await plain.newPage();
  await p.goto(`${base}/console/login`);
  await p.fill("#token", token);
  await p.click("form.card button[type=submit]");
  check(p.url().endsWith("/console/domains"), `without JavaScript: ${p.url()}`);
  check((await p.locator("button[data-copy]").count()) === 0 || (await p.locator("button[data-copy]:visible").count()) === 0, "copy buttons without JavaScript");
  await plain.close();

  check(failures.length === 0, `the browser console reported errors: ${failures.join("; ")}`);
}
