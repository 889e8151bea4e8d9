// The Introserv panel in the browser: every page is a server-rendered shell; this file fills it
// from the public HTTP API (fetch with the bearer token) exactly as any other client would.
// Texts come from the page's message catalogue (#messages), never from this file.
"use strict";

const MESSAGES = JSON.parse(document.getElementById("messages").textContent);
const TOKEN_KEY = "introserv.token";
const LANGUAGE_COOKIE = "panel_lang";
const PUBLIC_PAGES = ["login", "register", "confirm-email", "forgot-password", "reset-password", "not-found"];
// Dates, numbers and money in the page's language (en-GB: day before month, as in Polish).
const LOCALE = document.documentElement.lang === "pl" ? "pl-PL" : "en-GB";

function t(key, values) {
  let text = MESSAGES[key] ?? key;
  for (const [name, value] of Object.entries(values || {})) text = text.replaceAll(`{${name}}`, value);
  return text;
}

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// ---- session and language

const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) { value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY); },
};

function toLogin() {
  session.token = null;
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

// The server renders pages in the language kept in this cookie; the profile's language decides it.
function useLanguage(language) {
  const current = document.documentElement.lang;
  document.cookie = `${LANGUAGE_COOKIE}=${language}; path=/; max-age=31536000; samesite=strict`;
  if (language !== current) location.reload();
}

// ---- the API

class ApiError extends Error {
  constructor(status, error, retryAfter = null) {
    super(error.message);
    this.status = status;
    this.code = error.code;
    this.fields = error.fields || {};
    this.fieldCodes = error.field_codes || {};
    this.details = error.details || {};
    this.retryAfter = retryAfter;
  }
}

async function api(method, path, body, headers = {}) {
  // Refusals come back in the page's language (the API reads Accept-Language).
  const init = { method, headers: { Accept: "application/json", "Accept-Language": document.documentElement.lang, ...headers } };
  if (session.token) init.headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (networkError) {
    throw unreachable();
  }
  connectionRestored();
  if (response.status === 204) return null;
  let payload = null;
  try { payload = await response.json(); } catch (notJson) { payload = null; }
  if (response.ok) return payload;
  const error = payload && payload.error ? payload.error : { code: `http_${response.status}`, message: "" };
  if (response.status === 401 && error.code === "unauthenticated" && !PUBLIC_PAGES.includes(document.body.dataset.page)) {
    toLogin();
  }
  if (response.status >= 500) throw unavailable(response.status, error);
  throw new ApiError(response.status, error, response.headers.get("Retry-After"));
}

// Offline (the device has no network), unreachable (no answer) and a server fault (5xx) are
// three different things for the customer: only the last is ours to fix.
function unreachable() {
  const offline = navigator.onLine === false;
  notice(t(offline ? "errors.offline" : "errors.unreachable"), offline ? "offline" : "unreachable");
  return new ApiError(0, { code: offline ? "offline" : "unreachable", message: "" });
}

function unavailable(status = 503, error = { code: "service_unavailable", message: "" }) {
  const problem = new ApiError(status, error);
  notice(t("errors.unavailable"), "fault");
  return problem;
}

function notice(text, kind = "") {
  const box = $("#notice");
  box.textContent = text;
  box.dataset.kind = text ? kind : "";
  box.hidden = !text;
}

// An answer came: a notice that the connection was lost is no longer true.
function connectionRestored() {
  const box = $("#notice");
  if (["offline", "unreachable"].includes(box.dataset.kind)) notice("");
}

window.addEventListener("offline", () => notice(t("errors.offline"), "offline"));
window.addEventListener("online", () => { if ($("#notice").dataset.kind === "offline") notice(""); });

function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

// ---- forms: fields by name (dotted names nest), errors next to the fields they name

function readForm(form) {
  const data = {};
  for (const input of form.elements) {
    if (!input.name || input.disabled || input.dataset.readonly !== undefined || input.type === "submit") continue;
    if (input.type === "radio" && !input.checked) continue;
    let value;
    if (input.type === "checkbox") value = input.checked;
    else if (input.dataset.money !== undefined) value = input.value.trim() ? money(input.value.trim()) : null;
    else if (input.dataset.integer !== undefined) {
      // A whole number is sent as one; anything else as typed, for the API to name the field.
      const raw = input.value.trim();
      value = raw === "" ? null : (/^\d+$/.test(raw) ? Number(raw) : raw);
    }
    else {
      value = input.value.trim();
      if (value === "" && input.dataset.empty === "null") value = null;
    }
    const path = input.name.split(".");
    let target = data;
    for (const part of path.slice(0, -1)) target = target[part] = target[part] || {};
    target[path[path.length - 1]] = value;
  }
  return data;
}

function fillForm(form, values, prefix = "") {
  for (const [name, value] of Object.entries(values || {})) {
    const key = prefix + name;
    if (value && typeof value === "object" && !("amount" in value)) { fillForm(form, value, `${key}.`); continue; }
    for (const input of $$(`[name="${key}"]`, form)) {
      if (input.type === "checkbox") input.checked = Boolean(value);
      else if (input.type === "radio") input.checked = input.value === value;
      else if (value && typeof value === "object") input.value = value.amount;
      else input.value = value ?? "";
    }
  }
}

// Nested `fields` ({postal_address: {city: [...]}}) become dotted names, like the inputs.
function flatErrors(fields, prefix = "") {
  const flat = {};
  for (const [name, value] of Object.entries(fields || {})) {
    const key = prefix + name;
    if (Array.isArray(value)) flat[key] = value;
    else if (value && typeof value === "object") Object.assign(flat, flatErrors(value, `${key}.`));
    else flat[key] = [value];
  }
  return flat;
}

function clearErrors(form) {
  for (const line of $$("[data-error-for]", form)) line.textContent = "";
  for (const input of $$("[aria-invalid]", form)) input.removeAttribute("aria-invalid");
  const done = $(".form-done", form);
  if (done) done.textContent = "";
}

// A field's problem in the panel's words when its stable code has them, else the API's message
// (which is in the page's language already: the API reads Accept-Language).
function fieldMessage(text, problem) {
  if (problem && MESSAGES[`field_codes.${problem.code}`]) return t(`field_codes.${problem.code}`, problem.params);
  return MESSAGES[`field_errors.${text}`] ?? String(text);
}

function errorText(error) {
  if (error.status === 429) return t("errors.rate_limited_wait", { seconds: waitOf(error) });
  return MESSAGES[`errors.${error.code}`] ?? (error.message || t("errors.unexpected"));
}

// One message per error: next to the field it concerns when it names one (a refusal that is not a
// plain validation error says its own sentence there), else once above the form's button.
function showErrors(form, error) {
  clearErrors(form);
  if (!(error instanceof ApiError)) throw error;
  if (error.status >= 500 || error.status === 0) return;  // api() has told the customer already
  const codes = flatErrors(error.fieldCodes);
  let placed = 0;
  for (const [name, messages] of Object.entries(flatErrors(error.fields))) {
    const line = $(`[data-error-for="${name}"]`, form) || $(`[data-error-for="${name.split(".")[0]}"]`, form);
    if (!line) continue;
    line.textContent = placed === 0 && error.code !== "validation_error" && codes[name]
      ? errorText(error) : messages.map((text, index) => fieldMessage(text, (codes[name] || [])[index])).join(" ");
    const input = $(`[name="${name}"]`, form);
    if (input) input.setAttribute("aria-invalid", "true");
    placed += 1;
  }
  const general = $('[data-error-for=""]', form);
  if (general && !placed) general.textContent = errorText(error);
  const first = $('[aria-invalid="true"]', form);
  if (first) first.focus();
}

// A 429's wait in whole seconds: the Retry-After header, else details.retry_after.
function waitOf(error) {
  return String(Math.max(1, Number(error.retryAfter) || Number(error.details && error.details.retry_after) || 1));
}

// A message about a value goes once the customer changes that value; the form's own line too.
document.addEventListener("input", (event) => {
  const input = event.target;
  const form = input.form;
  if (!form) return;
  if (input.getAttribute("aria-invalid") === "true") {
    input.removeAttribute("aria-invalid");
    const line = $(`[data-error-for="${input.name}"]`, form);
    if (line) line.textContent = "";
  }
  const general = $('[data-error-for=""]', form);
  if (general) general.textContent = "";
});

function done(form, text) {
  const line = $(".form-done", form);
  if (line) line.textContent = text;
}

// A form whose submit calls the API; `send(data)` returns the API's promise.
function onSubmit(form, send) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = $('button[type="submit"]', form);
    if (button) button.disabled = true;
    try {
      await send(readForm(form));
    } catch (error) {
      showErrors(form, error);
    } finally {
      if (button) button.disabled = false;
    }
  });
}

// ---- S7: operations confirmed by a call when the customer asked for that

// `send(verificationId)` is called once; when the API answers `verification_required`, the customer
// is called (purpose "operation"), types the code, and `send` runs again with the checked id.
async function confirmed(send) {
  try {
    return await send(null);
  } catch (error) {
    if (error.code !== "verification_required") throw error;
    return send(await verifyOperation(error));
  }
}

// The form (or section) of the last action the customer took: where a call's code box goes.
let lastAction = null;
document.addEventListener("submit", (event) => { lastAction = event.target; }, true);
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("button");
  if (button && !button.closest("#operation-check")) lastAction = button.closest("form, section");
}, true);

function verifyOperation(refusal) {
  const box = $("#operation-check");
  const form = $("#operation-check-form");
  // The code is typed next to the action it confirms, not at the foot of the page.
  const action = lastAction;
  if (action && action.isConnected && !box.contains(action)) action.after(box);
  return new Promise((resolve, reject) => {
    let verification = null;
    const start = async (channel) => {
      clearErrors(form);
      try {
        verification = await api("POST", "/api/v1/verifications", { channel, purpose: "operation" });
        $("#operation-hint").textContent = t(`verify.hint.${verification.channel}`);
        $("#f-operation-code").value = "";
        $("#f-operation-code").focus();
      } catch (error) {
        if (error.status === 503 || error.code === "verification_unavailable") {
          notice("");
          $('[data-error-for=""]', form).textContent = t("verify.contact_support");
        } else {
          showErrors(form, error);
        }
      }
    };
    for (const button of $$("[data-operation-channel]", form)) button.onclick = () => start(button.dataset.operationChannel);
    $("#operation-cancel").onclick = () => { box.hidden = true; reject(refusal); };
    form.onsubmit = async (event) => {
      event.preventDefault();
      try {
        await api("POST", `/api/v1/verifications/${verification.id}/check`, { code: $("#f-operation-code").value.trim() });
        box.hidden = true;
        resolve(verification.id);
      } catch (error) {
        if (error.code === "wrong_code") error.fields = { code: [t("verify.wrong_code", { attempts: error.details.attempts_left })] };
        showErrors(form, error);
      }
    };
    box.hidden = false;
    start("flash_call");
  });
}

// ---- formatting

function money(amount, currency = "EUR") {
  return { amount: String(amount).replace(",", "."), currency };
}

const FORMATS = {
  // The amount is formatted as the decimal string it is (Intl reads a string exactly, never as a float).
  money: new Intl.NumberFormat(LOCALE, { minimumFractionDigits: 2, maximumFractionDigits: 2 }),
  number: new Intl.NumberFormat(LOCALE),
  percent: new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 2 }),
  // A date is a calendar day: read and shown in UTC so that no time zone moves it.
  date: new Intl.DateTimeFormat(LOCALE, { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" }),
  time: new Intl.DateTimeFormat(LOCALE, { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" }),
};

function showMoney(value) {
  return value ? `${FORMATS.money.format(value.amount)} ${value.currency}` : "–";
}

function showNumber(value) {
  return value === null || value === undefined ? "–" : FORMATS.number.format(value);
}

// A VAT rate comes as percent ("23.00"): "23%" in English, "23%" in Polish, "8,5%" for 8.50.
function showPercent(value) {
  return FORMATS.percent.format(Number(value) / 100);
}

function showDate(value) {
  if (!value) return "–";
  return FORMATS.date.format(new Date(value.length === 10 ? `${value}T00:00:00Z` : value));
}

function showTime(value) {
  return value ? FORMATS.time.format(new Date(value)) : "–";
}

function row(...cells) {
  return el("tr", {}, cells.map((cell) => (cell instanceof Node && cell.tagName === "TD" ? cell : el("td", {}, cell))));
}

// Under 600 px a table is a stack of cards: each cell shows its column's name (data-label).
function labelCells(table) {
  const names = $$("thead th", table).map((cell) => cell.textContent.trim());
  for (const line of $$("tbody tr", table)) {
    Array.from(line.cells).forEach((cell, index) => { if (names[index]) cell.dataset.label = names[index]; });
  }
}

// Until its rows come, a table says it is loading; with none, it says so instead of showing bare headers.
function loading(table) {
  const columns = $$("thead th", table).length || 1;
  table.setAttribute("aria-busy", "true");
  $("tbody", table).replaceChildren(el("tr", { class: "loading-row" },
    el("td", { colspan: columns }, el("span", { class: "spinner", "aria-hidden": "true" }), t("common.loading"))));
}

function emptyNote(table) {
  let empty = table.parentElement.querySelector(".empty");
  if (!empty) {
    empty = el("p", { class: "empty", text: t("common.nothing_yet"), hidden: true });
    table.after(empty);
  }
  return empty;
}

function fillTable(table, items, toRow) {
  const body = $("tbody", table);
  body.replaceChildren(...items.map(toRow));
  labelCells(table);
  table.removeAttribute("aria-busy");
  table.hidden = items.length === 0;
  emptyNote(table).hidden = items.length > 0;
}

const PAGE_SIZE = 20;

// A list the API hands out in pages (docs/CONTRACTS.md, Lists: ?limit=&cursor=, next_cursor): the first page in
// the table, and under it a "Show more" button that appends the next page while there is one.
async function fillPagedTable(table, path, toRow) {
  const pageOf = (cursor) => api("GET", `${path}${path.includes("?") ? "&" : "?"}limit=${PAGE_SIZE}` +
    (cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""));
  loading(table);
  const first = await pageOf(null);
  fillTable(table, first.items, toRow);
  let more = table.parentElement.querySelector("button.more");
  if (!more) {
    more = el("button", { type: "button", class: "small more", text: t("common.more") });
    table.after(more);
  }
  let cursor = first.next_cursor;
  more.hidden = !cursor;
  more.onclick = async () => {
    more.disabled = true;
    try {
      const next = await pageOf(cursor);
      $("tbody", table).append(...next.items.map(toRow));
      labelCells(table);
      cursor = next.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      if (error.status < 500) notice(t("errors.unexpected"));  // api() has said a 5xx already
    } finally {
      more.disabled = false;
    }
  };
}

function showAll(name, value) {
  for (const node of $$(`[data-show="${name}"]`)) node.textContent = value;
}

function status(value) {
  return el("span", { class: `status status-${value}`, text: t(`orders.state.${value}`) });
}

// ---- pages

const pages = {};

pages.login = () => {
  const form = $("#login-form");
  const params = new URLSearchParams(location.search);
  if (params.get("frozen")) Object.assign($("#login-message"), { hidden: false, textContent: t("security.frozen") });
  if (params.get("registered")) Object.assign($("#login-message"), { hidden: false, textContent: t("register.done") });
  if (params.get("reset")) Object.assign($("#login-message"), { hidden: false, textContent: t("login.reset_done") });
  onSubmit(form, async (data) => {
    if (!data.otp) delete data.otp;
    try {
      const created = await api("POST", "/api/v1/sessions", data);
      session.token = created.token;
    } catch (error) {
      if (error.code === "otp_required") {
        $("#otp-step").hidden = false;
        $("#f-otp").focus();
        return;
      }
      if (error.code === "invalid_credentials" || error.code === "invalid_otp") error.fields = {};
      throw error;
    }
    const profile = await api("GET", "/api/v1/profile");
    document.cookie = `${LANGUAGE_COOKIE}=${profile.language}; path=/; max-age=31536000; samesite=strict`;
    location.assign(sameOriginPath(params.get("next")));
  });
};

// Where to go after logging in: `next` only when it stays on this origin. Parsed the way the
// browser will follow it, so "/\evil.example" or "/<tab>/evil.example" (both "//evil.example"
// to a URL parser) cannot pass as a path; the path followed is the one parsed.
function sameOriginPath(next) {
  if (!next) return "/profile";
  let url;
  try { url = new URL(next, location.origin); } catch (invalid) { return "/profile"; }
  return url.origin === location.origin ? url.pathname + url.search + url.hash : "/profile";
}

pages.register = () => {
  onSubmit($("#register-form"), async (data) => {
    if (!data.phone) delete data.phone;
    await api("POST", "/api/v1/accounts", data);
    document.cookie = `${LANGUAGE_COOKIE}=${data.language}; path=/; max-age=31536000; samesite=strict`;
    location.assign("/login?registered=1");
  });
};

pages["confirm-email"] = () => {
  const form = $("#confirm-form");
  onSubmit(form, async (data) => {
    await api("POST", "/api/v1/profile/email/confirm", data);
    done(form, t("confirm.done"));
  });
  const token = new URLSearchParams(location.search).get("token");
  if (token) {
    $("#f-token").value = token;
    form.requestSubmit();
  }
};

// A1: "forgot password" names the account by login or by e-mail; the answer never says which exist.
pages["forgot-password"] = () => {
  const form = $("#forgot-form");
  onSubmit(form, async (data) => {
    const name = data.name || "";
    const body = name.includes("@") ? { email: name } : { login: name };
    try {
      await api("POST", "/api/v1/password-reset", body);
    } catch (error) {
      if (error.status === 429) {
        showErrors(form, error);
        $('[data-error-for=""]', form).textContent = t("forgot.wait", { seconds: waitOf(error) });
        return;
      }
      if (error.fields) error.fields = { name: Object.values(error.fields).flat() };  // login or email: one field
      throw error;
    }
    form.hidden = true;
    $("#forgot-sent").hidden = false;
  });
};

pages["reset-password"] = () => {
  const form = $("#reset-form");
  // The token came in the mailed link: keep it for this tab only and take it out of the address bar.
  const fromLink = new URLSearchParams(location.search).get("token");
  if (fromLink) {
    sessionStorage.setItem("introserv.reset", fromLink);
    history.replaceState(null, "", "/reset-password");
  }
  const token = sessionStorage.getItem("introserv.reset");
  const askAgain = (text) => {
    $('[data-error-for=""]', form).textContent = text;
    $("#reset-again").hidden = false;
  };
  if (!token) { askAgain(t("reset.no_token")); $('button[type="submit"]', form).disabled = true; return; }
  onSubmit(form, async (data) => {
    const body = { token, new_password: data.new_password, new_password_confirmation: data.new_password_confirmation };
    if (data.otp) body.otp = data.otp;
    try {
      await api("POST", "/api/v1/password-reset/confirm", body);
    } catch (error) {
      if (error.code === "otp_required") {
        $("#reset-otp-step").hidden = false;
        $("#f-otp").focus();
        error.fields = { otp: [t("errors.otp_required")] };
      } else if (error.code === "invalid_otp") {
        error.fields = { otp: [t("errors.invalid_otp")] };
      } else if (error.code === "token_unknown" || error.code === "token_expired") {
        showErrors(form, error);
        askAgain(t(`reset.${error.code}`));
        return;
      }
      throw error;
    }
    sessionStorage.removeItem("introserv.reset");
    location.assign("/login?reset=1");
  });
};

pages.profile = async (profile) => {
  const form = $("#profile-form");
  const countryNames = Object.fromEntries(JSON.parse($("#country-names").textContent));
  let changeRequested = false;
  const show = (current) => {
    fillForm(form, current);
    $("#f-country_name").value = countryNames[current.country] || current.country;
    $("#f-phone").value = current.phone || "";
    showAll("email", current.email);
    const emailState = $("#email-state");
    emailState.textContent = t(current.email_confirmed ? "profile.email_confirmed" : "profile.email_unconfirmed");
    emailState.className = `badge ${current.email_confirmed ? "ok" : "pending"}`;
    $("#email-resend").hidden = current.email_confirmed && !changeRequested;
    const phoneState = $("#phone-state");
    phoneState.textContent = current.phone ? t(current.phone_verified ? "profile.phone_verified" : "profile.phone_unverified") : "";
    phoneState.className = `badge ${current.phone_verified ? "ok" : "pending"}`;
    $("#company-fields").hidden = current.profile_type !== "company";
    $("#company-state").textContent = current.profile_type === "company" ? t(`profile.company_state.${current.company_verification}`) : "";
    $("#payments-blocked").hidden = !current.payments_blocked;
  };
  show(profile);
  for (const radio of $$('[name="profile_type"]', form)) {
    radio.addEventListener("change", () => { $("#company-fields").hidden = radio.value !== "company" || !radio.checked; });
  }
  onSubmit(form, async (data) => {
    if (data.profile_type === "individual") { delete data.company_name; delete data.vat_id; }
    const postal = data.postal_address;
    if (postal && Object.values(postal).every((value) => !value)) delete data.postal_address;
    const updated = await api("PATCH", "/api/v1/profile", data);
    show(updated);
    done(form, t("common.saved"));
    if (updated.language !== document.documentElement.lang) useLanguage(updated.language);
  });

  const emailForm = $("#email-change-form");
  $("#email-change-open").addEventListener("click", (event) => {
    emailForm.hidden = !emailForm.hidden;
    event.target.setAttribute("aria-expanded", String(!emailForm.hidden));
    if (!emailForm.hidden) $("#f-email", emailForm).focus();
  });
  onSubmit(emailForm, async (data) => {
    await api("POST", "/api/v1/profile/email-change", data);
    done(emailForm, t("profile.email_change_sent", { email: data.email }));
    changeRequested = true;
    $("#email-resend").hidden = false;
  });
  // A1: the confirmation mail again, to the new address a change waits on or the unconfirmed one.
  $("#email-resend").addEventListener("click", async () => {
    const sent = $("#email-resend-done");
    const refused = $("#email-resend-error");
    sent.hidden = true;
    refused.hidden = true;
    try {
      const answer = await api("POST", "/api/v1/profile/email/resend");
      Object.assign(sent, { hidden: false, textContent: t("profile.email_resend_sent", { email: answer.email }) });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status >= 500) return;  // api() has said so already
      const text = error.status === 429 ? t("profile.email_resend_wait", { seconds: waitOf(error) }) : errorText(error);
      Object.assign(refused, { hidden: false, textContent: text });
    }
  });

  // Phone verification (S7): a flash call first; the customer may ask for a voice call or an SMS.
  const phoneForm = $("#phone-form");
  const codeForm = $("#phone-code-form");
  const phonePassword = $("#f-phone-password");
  // A new number receives the calls that confirm operations: changing it needs the password.
  const phoneChanged = () => $("#f-phone").value.trim() !== (profile.phone || "");
  $("#f-phone").addEventListener("input", () => { $("#phone-password").hidden = !phoneChanged(); });
  let verification = null;
  const start = async (channel) => {
    clearErrors(phoneForm);
    clearErrors(codeForm);
    const phone = $("#f-phone").value.trim();
    try {
      if (phoneChanged()) {
        const change = { phone: phone || null, password: phonePassword.value };
        profile = await confirmed((verificationId) => api("PATCH", "/api/v1/profile",
          verificationId ? { ...change, verification_id: verificationId } : change));
        phonePassword.value = "";
        $("#phone-password").hidden = true;
        show(profile);
        if (!phone) return;
      }
      verification = await api("POST", "/api/v1/verifications", { channel, purpose: "phone" });
      codeForm.hidden = false;
      $("#phone-code-hint").textContent = t(`verify.hint.${verification.channel}`);
      $("#f-code", codeForm).value = "";
      $("#f-code", codeForm).focus();
    } catch (error) {
      const target = codeForm.hidden ? phoneForm : codeForm;
      if (error.code === "verification_unavailable" || error.status === 503) {
        clearErrors(target);
        $('[data-error-for=""]', target).textContent = t("verify.contact_support");
        notice("");
        return;
      }
      showErrors(target, error);
    }
  };
  phoneForm.addEventListener("submit", (event) => { event.preventDefault(); start("flash_call"); });
  for (const button of $$("[data-channel]", codeForm)) button.addEventListener("click", () => start(button.dataset.channel));
  onSubmit(codeForm, async (data) => {
    try {
      await api("POST", `/api/v1/verifications/${verification.id}/check`, { code: data.code });
    } catch (error) {
      if (error.code === "wrong_code") {
        error.fields = { code: [t("verify.wrong_code", { attempts: error.details.attempts_left })] };
      }
      throw error;
    }
    codeForm.hidden = true;
    Object.assign($("#phone-done"), { hidden: false, textContent: t("verify.done") });
    // The gateway has the profile record it before answering: one read shows it verified.
    profile = await api("GET", "/api/v1/profile");
    show(profile);
  });
};

pages.notifications = async () => {
  const form = $("#notifications-form");
  fillForm(form, await api("GET", "/api/v1/profile/notifications"));
  onSubmit(form, async (data) => {
    fillForm(form, await api("PUT", "/api/v1/profile/notifications", data));
    done(form, t("common.saved"));
  });
};

pages.security = async () => {
  let overview = await api("GET", "/api/v1/security");
  // Every change lands in the login history and the timeline, so both are read again after one.
  const show = () => {
    $("#code-set").hidden = !overview.security_code_set;
    $("#code-form").hidden = overview.security_code_set;
    $("#f-rules").value = (overview.ip_restriction || []).join("\n");
    $("#tfa-on").hidden = !overview.two_factor_enabled;
    $("#tfa-start-form").hidden = overview.two_factor_enabled;
    $("#tfa-disable-form").hidden = !overview.two_factor_enabled;
    const last = overview.last_login;
    $("#last-login").textContent = last ? t("security.last_ip_value", { ip: last.ip, at: showTime(last.at) }) : "–";
    if (overview.your_ip) {
      $("#ip-current").textContent = t("security.ip_yours", { ip: overview.your_ip });
      $("#ip-yours").hidden = false;
    }
    return loadLists();
  };
  // A2: every live session; any but this one can be ended from here.
  const endSession = async (item) => {
    $("#session-ended").hidden = true;
    try {
      await api("DELETE", `/api/v1/sessions/${encodeURIComponent(item.id)}`);
      $("#session-ended").hidden = false;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status < 500 && error.code !== "not_found") notice(errorText(error));  // not_found: it ended already
    }
    await loadLists();
  };
  const sessionRow = (item) => row(showTime(item.created_at), showTime(item.last_seen_at), item.ip, item.user_agent || "",
    el("td", {}, item.current
      ? el("span", { class: "badge ok", text: t("security.session_this") })
      : el("button", { type: "button", class: "small secondary", text: t("security.session_end"),
        "aria-label": `${t("security.session_end")}: ${item.ip}, ${showTime(item.created_at)}`, onclick: () => endSession(item) })));
  const loadLists = async () => {
    await Promise.all([
      fillPagedTable($("#sessions"), "/api/v1/sessions", sessionRow),
      fillPagedTable($("#logins"), "/api/v1/security/logins", (item) => row(showTime(item.at), item.ip,
        t(item.success ? "security.login_ok" : "security.login_failed"), item.user_agent || "")),
      fillPagedTable($("#events"), "/api/v1/security/events", (item) => row(showTime(item.at),
        t(`security.event_kind.${item.kind}`), item.ip || ""))]);
  };
  await show();

  // S2: set once and never shown again, so it is typed twice before it goes.
  const codeForm = $("#code-form");
  onSubmit(codeForm, async (data) => {
    if (data.code !== data.code_confirmation) {
      throw new ApiError(400, { code: "validation_error", message: "", fields: { code_confirmation: [t("security.code_mismatch")] } });
    }
    await api("POST", "/api/v1/security/code", { code: data.code });
    codeForm.reset();
    overview = await api("GET", "/api/v1/security");
    show();
  });

  // IP restriction (S3): one rule per line; the API answers per-line errors as "line N: ...".
  const ipForm = $("#ip-form");
  const lineErrors = $("#ip-line-errors");
  $("#ip-add-mine").addEventListener("click", () => {
    const area = $("#f-rules");
    const lines = area.value.split("\n").map((line) => line.trim()).filter(Boolean);
    if (!lines.includes(overview.your_ip)) lines.push(overview.your_ip);
    area.value = lines.join("\n");
    area.focus();
  });
  onSubmit(ipForm, async (data) => {
    lineErrors.hidden = true;
    const lines = $("#f-rules").value.split("\n").map((line) => line.trim());
    while (lines.length && !lines[lines.length - 1]) lines.pop();
    const body = { rules: lines, password: data.password };
    if (!$("#lockout-confirm").hidden && data.confirm_lockout) body.confirm_lockout = true;
    try {
      overview = await confirmed((verificationId) => api("PUT", "/api/v1/security/ip-restriction",
        verificationId ? { ...body, verification_id: verificationId } : body));
    } catch (error) {
      if (error.code === "would_lock_out") {
        $("#lockout-confirm").hidden = false;
        $("#lockout-text").textContent = t("security.ip_lockout", { ip: error.details.ip || error.details.client_ip || "" });
        $("#f-confirm_lockout").focus();
        error.fields = {};
        throw error;
      }
      // Each bad line comes with the field code ip_rule and its number in params.line.
      const perLine = (error.fields && error.fields.rules) || [];
      const problems = (error.fieldCodes && error.fieldCodes.rules) || [];
      if (Array.isArray(perLine) && problems.some((problem) => problem.code === "ip_rule")) {
        const byLine = {};
        problems.forEach((problem, index) => {
          if (problem.code === "ip_rule") byLine[problem.params.line] = String(perLine[index]).replace(/^[^:]*:\s*/, "");
        });
        lineErrors.replaceChildren(...lines.map((line, index) => el("li", { class: byLine[index + 1] ? "bad" : "" },
          el("code", { text: line || " " }), byLine[index + 1] ? el("span", { class: "field-error", text: ` ← ${byLine[index + 1]}` }) : "")));
        lineErrors.hidden = false;
        error.fields = { rules: [t("security.ip_bad_lines", { count: Object.keys(byLine).length })] };
        error.fieldCodes = {};
      }
      throw error;
    }
    $("#lockout-confirm").hidden = true;
    $("#f-confirm_lockout").checked = false;
    $("#f-ip-password").value = "";
    show();
    done(ipForm, t("common.saved"));
  });

  const operationForm = $("#operation-confirmation-form");
  $("#f-enabled", operationForm).checked = Boolean(overview.operation_confirmation);
  onSubmit(operationForm, async (data) => {
    overview = await confirmed((verificationId) => api("PUT", "/api/v1/security/operation-confirmation",
      verificationId ? { ...data, verification_id: verificationId } : data));
    $("#f-operation-password").value = "";
    show();
    done(operationForm, t("common.saved"));
  });

  const passwordForm = $("#password-form");
  onSubmit(passwordForm, async (data) => {
    await confirmed((verificationId) => api("PUT", "/api/v1/security/password",
      verificationId ? { ...data, verification_id: verificationId } : data));
    passwordForm.reset();
    done(passwordForm, t("security.password_done"));
  });
  $("#end-others").addEventListener("click", async () => {
    await api("DELETE", "/api/v1/sessions/others");
    $("#end-others-done").hidden = false;
    await loadLists();
  });

  // 2FA (S6): the QR code is drawn by the panel's server as SVG; recovery codes are shown once.
  const confirmForm = $("#tfa-confirm-form");
  const startForm = $("#tfa-start-form");
  onSubmit(startForm, async (data) => {
    const enrolment = await api("POST", "/api/v1/security/2fa", data);
    const svg = await fetch("/panel/qr.svg", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: enrolment.otpauth_uri }) });
    const image = el("img", { src: URL.createObjectURL(await svg.blob()), alt: t("security.tfa_qr"), width: 200, height: 200 });
    $("#tfa-qr").replaceChildren(image);
    $("#tfa-secret").textContent = enrolment.secret;
    confirmForm.hidden = false;
    startForm.reset();
    startForm.hidden = true;
    $("#f-tfa-otp").focus();
  });
  // The recovery codes are shown once, in a dialog that closes only after "I have saved them".
  const codesDialog = $("#tfa-codes");
  let codesText = "";
  onSubmit(confirmForm, async (data) => {
    const answer = await api("POST", "/api/v1/security/2fa/confirm", data);
    confirmForm.hidden = true;
    $("#tfa-code-list").replaceChildren(...answer.recovery_codes.map((code) => el("li", {}, el("code", { text: code }))));
    codesText = [t("security.tfa_codes_file", { login: overview.login }), "", ...answer.recovery_codes, ""].join("\n");
    $("#tfa-codes-saved").checked = false;
    $("#tfa-codes-close").disabled = true;
    $("#tfa-codes-done").textContent = "";
    codesDialog.showModal();
    overview = await api("GET", "/api/v1/security");
    show();
    $("#tfa-disable-form").hidden = true;
  });
  $("#tfa-codes-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(codesText);
      $("#tfa-codes-done").textContent = t("security.tfa_codes_copied");
    } catch (refused) {
      // No clipboard (permission or an old browser): select them for the customer to copy.
      getSelection().selectAllChildren($("#tfa-code-list"));
    }
  });
  $("#tfa-codes-download").addEventListener("click", () => {
    const link = el("a", { href: URL.createObjectURL(new Blob([codesText], { type: "text/plain;charset=utf-8" })),
      download: "introserv-recovery-codes.txt" });
    codesDialog.append(link);
    link.click();
    link.remove();
    $("#tfa-codes-done").textContent = t("security.tfa_codes_downloaded");
  });
  $("#tfa-codes-saved").addEventListener("change", (event) => { $("#tfa-codes-close").disabled = !event.target.checked; });
  codesDialog.addEventListener("cancel", (event) => { if (!$("#tfa-codes-saved").checked) event.preventDefault(); });
  $("#tfa-codes-close").addEventListener("click", () => {
    codesDialog.close();
    $("#tfa-code-list").replaceChildren();
    codesText = "";
    $("#tfa-disable-form").hidden = !overview.two_factor_enabled;
  });
  const disableForm = $("#tfa-disable-form");
  onSubmit(disableForm, async (data) => {
    await api("DELETE", "/api/v1/security/2fa", data);
    disableForm.reset();
    overview = await api("GET", "/api/v1/security");
    show();
  });

  $("#not-me").addEventListener("click", () => { $("#not-me-confirm").hidden = false; $("#not-me-yes").focus(); });
  $("#not-me-no").addEventListener("click", () => { $("#not-me-confirm").hidden = true; $("#not-me").focus(); });
  $("#not-me-yes").addEventListener("click", async () => {
    await api("POST", "/api/v1/security/freeze");
    session.token = null;
    location.assign("/login?frozen=1");
  });
};

function orderActions(order) {
  return el("td", { class: "actions" }, order.actions.map((action) =>
    el("a", { class: "button small", href: `/orders/${order.id}#${action}`, text: t(`orders.action.${action}`),
      "aria-label": `${t(`orders.action.${action}`)}: ${order.number}` })));
}

pages.orders = async () => {
  // The forecast comes first, so that the order it says stops is marked in every page of the table;
  // the tables say they are loading meanwhile. Without it (the ledger away) the page lists the orders.
  loading($("#active-orders"));
  loading($("#order-history"));
  const forecast = await readForecast().catch(() => null);
  if (forecast) {
    $("#orders-forecast").textContent = forecastSummary(forecast);
    $("#orders-forecast").hidden = false;
  }
  await Promise.all([
    fillPagedTable($("#active-orders"), "/api/v1/orders", (order) => row(
      el("a", { href: `/orders/${order.id}`, text: order.number }), order.hostname || "–", order.plan.name, order.ip_address || "–",
      showDate(order.paid_until), String(order.days_left), el("td", {}, el("div", {}, status(order.status), stopMark(forecast, order))),
      showMoney(order.cost), orderActions(order))),
    fillPagedTable($("#order-history"), "/api/v1/orders/history", (order) => row(
      el("a", { href: `/orders/${order.id}`, text: order.number }), order.hostname || "–", order.plan.name, showDate(order.created_at),
      showDate(order.paid_until), status(order.status), showMoney(order.cost)))]);
};

pages["order-new"] = async () => {
  const form = $("#order-form");
  const submit = $('button[type="submit"]', form);
  let plans = [];
  let chosen = null;
  let key = newKey();
  const choosePlan = (plan) => {
    chosen = plan;
    const period = $("#f-period_months");
    period.replaceChildren(...plan.prices.map((price) => el("option", { value: price.period_months,
      text: t("order_new.period_option", { months: price.period_months, price: showMoney(price.price) }) })));
    $("#period-field").hidden = false;
    const list = $("#plan-field-list");
    list.replaceChildren(...plan.required_fields.map((spec) => {
      const id = `f-fields-${spec.name}`;
      const label = el("label", { for: id }, MESSAGES[`plans.field.${spec.name}`] ?? spec.name, " ",
        el("span", { class: "required", title: t("common.required"), text: "*" }));
      // A datacenter choice says per option whether it has stock: a sold-out one cannot be chosen.
      const choice = (option) => {
        if (typeof option === "string") return el("option", { value: option, text: option });
        const name = MESSAGES[`plans.datacenter.${option.value}`] ?? option.value;
        return el("option", { value: option.value, disabled: !option.available,
          text: option.available ? name : t("plans.sold_out_option", { name }) });
      };
      const input = spec.type === "choice"
        ? el("select", { id, name: `fields.${spec.name}`, required: true, "aria-describedby": `e-${id}` },
          el("option", { value: "", text: t("common.choose") }), spec.options.map(choice))
        : el("input", { id, name: `fields.${spec.name}`, type: "text", required: true, "data-pattern": spec.pattern || null,
          "aria-describedby": `e-${id}` });
      return el("div", { class: "field" }, label, input,
        el("p", { class: "field-error", id: `e-${id}`, "data-error-for": `fields.${spec.name}` }));
    }));
    $("#plan-fields").hidden = plan.required_fields.length === 0;
    $("#auto-renew").hidden = false;
    key = newKey();
    quoteOrder();
  };
  // The amount placing the order charges, from the server; the submit button carries it.
  let quote = null;
  const askQuote = () => api("GET", `/api/v1/orders/quote?plan_id=${encodeURIComponent(chosen.id)}` +
    `&period_months=${encodeURIComponent($("#f-period_months").value)}`);
  const showQuote = (answer) => {
    quote = answer;
    $("#order-quote").replaceChildren(el("p", { text: t("order_new.quote", { charge: showMoney(answer.charge), date: showDate(answer.paid_until) }) }));
    $("#order-quote").hidden = false;
    submit.textContent = t("order_new.submit_pay", { charge: showMoney(answer.charge) });
    submit.dataset.amount = answer.charge.amount;
    submit.disabled = false;
  };
  // Only the latest question's answer is shown: an earlier one arriving after it (another plan or
  // period, asked a moment before) would put the wrong amount on the button.
  let asked = 0;
  const quoteOrder = async () => {
    const question = ++asked;
    quote = null;
    submit.disabled = true;
    submit.textContent = t("order_new.submit");
    delete submit.dataset.amount;
    $("#order-quote").hidden = true;
    if (!chosen || !$("#f-period_months").value) return;
    try {
      const answer = await askQuote();
      if (question === asked) showQuote(answer);
    } catch (error) { if (question === asked) showErrors(form, error); }
  };
  $("#f-period_months").addEventListener("change", () => { key = newKey(); quoteOrder(); });
  const chooseKind = async (kind) => {
    plans = (await api("GET", `/api/v1/plans?kind=${kind}`)).items;
    $("#plan-list").replaceChildren(...plans.map((plan) => el("label", { class: plan.available === false ? "plan sold-out" : "plan" },
      el("input", { type: "radio", name: "plan_id", value: plan.id, disabled: plan.available === false, onchange: () => choosePlan(plan) }),
      el("strong", { text: ` ${plan.name}` }), ` — ${plan.description} `,
      el("span", { class: "price", text: t("order_new.from", { price: showMoney(plan.prices[0].price) }) }),
      plan.available === false ? el("span", { class: "status", text: ` (${t("plans.sold_out")})` }) : null)));
    $("#plans").hidden = false;
    $("#period-field").hidden = true;
    $("#plan-fields").hidden = true;
    submit.disabled = true;
  };
  for (const radio of $$('[name="kind"]', form)) radio.addEventListener("change", () => chooseKind(radio.value));
  const kind = new URLSearchParams(location.search).get("kind");
  if (kind === "dedicated" || kind === "vps") {
    $(`[name="kind"][value="${kind}"]`, form).checked = true;
    await chooseKind(kind);
  }
  onSubmit(form, async (data) => {
    // The plan's required fields are checked here first, so a customer is told before anything is sent.
    const missing = {};
    for (const input of $$("#plan-field-list [name]")) {
      if (!input.value.trim()) missing[input.name] = [t("field_errors.required")];
      // the API's pattern is a Python regex; JavaScript reads it the same way without the `v` flag
      else if (input.dataset.pattern && !new RegExp(input.dataset.pattern).test(input.value.trim())) {
        missing[input.name] = [t("order_new.bad_format")];
      }
    }
    if (Object.keys(missing).length) throw new ApiError(400, { code: "validation_error", message: "", fields: missing });
    // Placed only at the amount the button shows: a quote that moved meanwhile is shown again first.
    const shown = quote;
    const fresh = await askQuote();
    if (!shown || fresh.charge.amount !== shown.charge.amount || fresh.charge.currency !== shown.charge.currency) {
      showQuote(fresh);
      $('[data-error-for=""]', form).textContent = t("order_new.price_changed");
      return;
    }
    const body = { plan_id: chosen.id, period_months: Number(data.period_months), fields: data.fields || {},
      auto_renew: data.auto_renew };
    const order = await api("POST", "/api/v1/orders", body, { "Idempotency-Key": key });
    location.assign(`/orders/${order.id}?placed=1`);
  });
};

pages.order = async () => {
  const id = document.body.dataset.orderId;
  const say = (text) => Object.assign($("#order-done"), { hidden: !text, textContent: text || "" });
  let order;
  const show = async () => {
    order = await api("GET", `/api/v1/orders/${encodeURIComponent(id)}`);
    const facts = {
      number: order.number, hostname: order.hostname || "–",
      plan: `${order.plan.name} (${t(`plans.kind.${order.plan.kind}`)})`, ip_address: order.ip_address || "–",
      paid_until: showDate(order.paid_until), days_left: String(order.days_left), cost: showMoney(order.cost),
      auto_renew: t(order.auto_renew ? "order.on" : "order.off"), cancel_at: showDate(order.cancel_at),
      fields: Object.entries(order.fields || {}).map(([name, value]) => `${MESSAGES[`plans.field.${name}`] ?? name}: ${value}`).join(", "),
    };
    for (const [name, value] of Object.entries(facts)) for (const node of $$(`[data-order="${name}"]`)) node.textContent = value;
    $('[data-order="status"]').replaceChildren(status(order.status));
    for (const action of ["renew", "change_plan", "cancel"]) $(`#${action}`).hidden = !order.actions.includes(action);
    $("#auto-renew").hidden = ["cancelled", "closed"].includes(order.status);
    $("#f-order-auto_renew").checked = order.auto_renew;
    fillTable($("#order-events"), order.events || [], (item) => row(showTime(item.at), t(`order.event_kind.${item.kind}`)));
  };

  // Plans and prices are the server's and are read again after every change: the plan list never
  // offers the current plan, and the renew button carries the amount of a fresh renewal quote.
  const renewForm = $("#renew-form");
  const renewButton = $("#renew-confirm");
  let renewQuote = null;
  const loadPlans = async () => {
    const plans = (await api("GET", `/api/v1/plans?kind=${order.plan.kind}`)).items;
    const plan = plans.find((item) => item.id === order.plan.id);
    const period = $("#f-renew-period");
    const keep = period.value || String(order.period_months);
    period.replaceChildren(...(plan ? plan.prices : []).map((price) => el("option",
      { value: price.period_months, text: t("order.renew_period", { months: price.period_months }) })));
    if (plan && plan.prices.some((price) => String(price.period_months) === keep)) period.value = keep;
    $("#f-change-plan").replaceChildren(...plans.filter((item) => item.id !== order.plan.id)
      .map((item) => el("option", { value: item.id, text: item.name })));
  };
  const quoteLines = (quote) => el("ul", {}, (quote.lines || []).map((line) => el("li", {},
    `${line.description || `${showDate(line.period_from)} – ${showDate(line.period_to)}`}: ${showMoney(line.amount)}`)));
  const showRenewQuote = (quote) => {
    renewQuote = quote;
    $("#renew-quote").replaceChildren(el("p", { text: t("order.renew_quote", { charge: showMoney(quote.charge), date: showDate(quote.paid_until) }) }),
      quoteLines(quote));
    $("#renew-quote").hidden = false;
    renewButton.textContent = t("order.renew_pay", { charge: showMoney(quote.charge) });
    renewButton.dataset.amount = quote.charge.amount;
    renewButton.disabled = false;
  };
  const askRenewQuote = () => api("GET", `/api/v1/orders/${encodeURIComponent(id)}/renew/quote?period_months=${encodeURIComponent($("#f-renew-period").value)}`);
  let renewAsked = 0;   // as on the order form: only the latest question's answer is shown
  const quoteRenewal = async () => {
    const question = ++renewAsked;
    renewQuote = null;
    renewButton.disabled = true;
    renewButton.textContent = t("order.renew_submit");
    delete renewButton.dataset.amount;
    $("#renew-quote").hidden = true;
    if (!order.actions.includes("renew") || !$("#f-renew-period").value) return;
    try {
      const answer = await askRenewQuote();
      if (question === renewAsked) showRenewQuote(answer);
    } catch (error) { if (question === renewAsked) showErrors(renewForm, error); }
  };
  const refresh = async () => {
    await show();
    await loadPlans();
    await quoteRenewal();
  };
  await refresh();
  if (new URLSearchParams(location.search).get("placed")) say(t(`order.placed.${order.status}`));
  if (location.hash) { const target = $(location.hash); if (target && !target.hidden) $("select, input", target).focus(); }

  const autoRenewForm = $("#auto-renew-form");
  $("#f-order-auto_renew").addEventListener("change", async (event) => {
    clearErrors(autoRenewForm);
    const wanted = event.target.checked;
    try {
      await api("PATCH", `/api/v1/orders/${encodeURIComponent(id)}`, { auto_renew: wanted });
      await refresh();
      done(autoRenewForm, t(order.auto_renew ? "order.auto_renew_on" : "order.auto_renew_off"));
    } catch (error) {
      event.target.checked = !wanted;
      showErrors(autoRenewForm, error);
    }
  });

  let renewKey = newKey();
  // Another period is another request: a retry of the first keeps its key, a new choice gets its own.
  $("#f-renew-period").addEventListener("change", () => { renewKey = newKey(); clearErrors(renewForm); quoteRenewal(); });
  onSubmit(renewForm, async (data) => {
    // Charged only at the amount the button shows: a quote that moved meanwhile is shown again first.
    const shown = renewQuote;
    const fresh = await askRenewQuote();
    if (!shown || fresh.charge.amount !== shown.charge.amount || fresh.charge.currency !== shown.charge.currency) {
      showRenewQuote(fresh);
      $('[data-error-for=""]', renewForm).textContent = t("order.price_changed");
      return;
    }
    await api("POST", `/api/v1/orders/${encodeURIComponent(id)}/renew`, { period_months: Number(data.period_months) }, { "Idempotency-Key": renewKey });
    renewKey = newKey();
    await refresh();
    say(t("order.renewed", { charge: showMoney(shown.charge), date: showDate(order.paid_until) }));
  });

  // A plan change and a cancellation show their quote first; the customer confirms what they read.
  const changeForm = $("#change-form");
  let changeKey = newKey();
  onSubmit(changeForm, async (data) => {
    const quote = await api("GET", `/api/v1/orders/${id}/change-plan/quote?plan_id=${encodeURIComponent(data.plan_id)}`);
    const box = $("#change-quote");
    box.replaceChildren(el("p", { text: t("order.quote", { charge: showMoney(quote.charge), credit: showMoney(quote.credit) }) }), quoteLines(quote));
    box.hidden = false;
    $("#change-confirm").hidden = false;
    $("#change-confirm").focus();
  });
  $("#f-change-plan").addEventListener("change", () => { $("#change-quote").hidden = true; $("#change-confirm").hidden = true; });
  $("#change-confirm").addEventListener("click", async () => {
    clearErrors(changeForm);
    try {
      const result = await api("POST", `/api/v1/orders/${id}/change-plan`, { plan_id: $("#f-change-plan").value }, { "Idempotency-Key": changeKey });
      changeKey = newKey();
      $("#change-quote").hidden = true;
      $("#change-confirm").hidden = true;
      await refresh();
      say(t("order.changed", { plan: result.order.plan.name, charge: showMoney(result.charge), credit: showMoney(result.credit) }));
    } catch (error) { showErrors(changeForm, error); }
  });

  const cancelForm = $("#cancel-form");
  onSubmit(cancelForm, async (data) => {
    const quote = await api("GET", `/api/v1/orders/${id}/cancel/quote?when=${data.when}`);
    $("#cancel-quote").replaceChildren(el("p", { text: t("order.refund_quote", { refund: showMoney(quote.refund) }) }));
    $("#cancel-quote").hidden = false;
    $("#cancel-confirm").hidden = false;
    $("#cancel-confirm").focus();
  });
  for (const radio of $$('[name="when"]', cancelForm)) radio.addEventListener("change", () => { $("#cancel-quote").hidden = true; $("#cancel-confirm").hidden = true; });
  $("#cancel-confirm").addEventListener("click", async () => {
    clearErrors(cancelForm);
    const data = readForm(cancelForm);
    const body = { when: data.when };
    if (data.reason) body.reason = data.reason;
    try {
      const result = await confirmed((verificationId) => api("POST", `/api/v1/orders/${id}/cancel`,
        verificationId ? { ...body, verification_id: verificationId } : body, { "Idempotency-Key": newKey() }));
      $("#cancel-quote").hidden = true;
      $("#cancel-confirm").hidden = true;
      await refresh();
      say(t("order.cancelled", { refund: showMoney(result.refund) }));
    } catch (error) { showErrors(cancelForm, error); }
  });
};

// Home: the balance with the ways to top it up, and what needs the customer now (orders awaiting
// payment, overdue or suspended, ending without auto-renew; an unverified phone or e-mail).
const ENDING_DAYS = 7;

pages.home = async (profile) => {
  const [balance, methods, orders] = await Promise.all([api("GET", "/api/v1/balance"),
    api("GET", "/api/v1/payment-methods"), api("GET", "/api/v1/orders?limit=100")]);
  $("#home-balance").textContent = showMoney(balance.balance);
  const usable = (methods.items || []).filter((method) => method.available);
  $("#home-methods").replaceChildren(...usable.map((method) => el("li", { text: method.name })));
  $("#home-no-methods").hidden = usable.length > 0;
  $("#home-top-up").hidden = usable.length === 0;

  const name = (order) => (order.hostname ? `${order.number} (${order.hostname})` : order.number);
  const item = (kind, text, href, action) => el("li", { class: `attention-${kind}` }, `${text} `,
    el("a", { class: "button small", href, text: action, "aria-label": `${action}: ${text}` }));
  const needs = [];
  for (const order of orders.items) {
    const link = `/orders/${encodeURIComponent(order.id)}`;
    if (order.status === "pending_payment") {
      needs.push(item("pending", t("home.pending", { order: name(order) }), "/balance#payment-methods", t("home.pay")));
    } else if (order.status === "overdue") {
      needs.push(item("overdue", t("home.overdue", { order: name(order), date: showDate(order.paid_until) }), `${link}#renew`, t("home.renew")));
    } else if (order.status === "suspended") {
      needs.push(item("suspended", t("home.suspended", { order: name(order) }), `${link}#renew`, t("home.renew")));
    } else if (order.status === "active" && !order.auto_renew && !order.cancel_at && order.days_left <= ENDING_DAYS) {
      needs.push(item("ending", t("home.ending", { order: name(order), date: showDate(order.paid_until) }), `${link}#renew`, t("home.renew")));
    }
  }
  if (!profile.phone) needs.push(item("phone", t("home.phone_missing"), "/profile", t("home.open")));
  else if (!profile.phone_verified) needs.push(item("phone", t("home.phone_unverified"), "/profile", t("home.verify")));
  if (!profile.email_confirmed) needs.push(item("email", t("home.email_unconfirmed", { email: profile.email }), "/profile", t("home.open")));
  $("#attention").replaceChildren(...needs);
  $("#attention-none").hidden = needs.length > 0;
  $("#home-orders-count").textContent = t("home.orders_count",
    { count: orders.next_cursor ? `${orders.items.length}+` : String(orders.items.length) });
};

pages.balance = async () => {
  statementForms();
  await showForecast();
  const numbers = await orderNumbers();   // a charge's or refund's reference is its order's id
  const [balance, methods] = await Promise.all([api("GET", "/api/v1/balance"), api("GET", "/api/v1/payment-methods"),
    fillPagedTable($("#transactions"), "/api/v1/balance/transactions", (item) => row(showTime(item.at),
      t(`balance.kinds.${item.kind}`), item.description || "", numbers.get(item.reference) || item.reference || "",
      el("td", { class: "num", text: showMoney(item.amount) }), el("td", { class: "num", text: showMoney(item.balance_after) })))]);
  $("#balance").textContent = showMoney(balance.balance);
  const items = methods.items || methods;
  $("#payment-methods").replaceChildren(...items.map((method) => el("li", { class: method.available ? "ok" : "unavailable" },
    el("strong", { text: method.name }), " — ",
    // The ledger names the method and the reason in the customer's language already.
    method.available ? t("balance.available") : t("balance.unavailable", { reason: method.reason || "" }))));
};

// ---- the forecast (how long the balance lasts), statements and the year's archive

function dayCount(n) {
  const key = `forecast.day.${new Intl.PluralRules(document.documentElement.lang).select(n)}`;
  return t(key in MESSAGES ? key : "forecast.day.other", { n: String(n) });
}

function longDate(value) {
  return new Date(`${value}T00:00:00`).toLocaleDateString(document.documentElement.lang, { day: "numeric", month: "long", year: "numeric" });
}

// One read per page: the band and the page that shows the forecast share it.
let forecastRead = null;

function readForecast() {
  forecastRead = forecastRead || api("GET", "/api/v1/balance/forecast");
  return forecastRead;
}

// Money as whole minor units (cents), read from and written as the API's decimal string, never a float.
function minorOf(value) {
  const [whole, fraction = ""] = value.amount.replace("-", "").split(".");
  const minor = Number(whole) * 100 + Number(fraction.padEnd(2, "0").slice(0, 2));
  return value.amount.startsWith("-") ? -minor : minor;
}

function moneyOf(minor, currency) {
  const sign = minor < 0 ? "-" : "";
  const size = Math.abs(minor);
  return money(`${sign}${Math.floor(size / 100)}.${String(size % 100).padStart(2, "0")}`, currency);
}

// What a top-up must bring for the charge that stops to be paid: the charge, less what the balance
// (after the renewals before it) and the credit limit still cover. A top-up now raises every later
// balance by its amount, so this is the least that keeps the order running.
function toTopUp(forecast) {
  const last = forecast.renewals[forecast.renewals.length - 1];
  const before = last ? last.balance_after : forecast.balance;
  const missing = minorOf(forecast.stops.amount) - minorOf(before) - minorOf(forecast.credit_limit);
  return moneyOf(missing, forecast.stops.amount.currency);
}

// The orders page marks the order that the forecast says stops first, with a way to the forecast.
function stopMark(forecast, order) {
  if (!forecast || !forecast.stops || forecast.stops.order_id !== order.id) return null;
  return el("a", { class: "forecast-mark", href: "/balance#forecast",
    text: t("forecast.mark", { date: longDate(forecast.stops.on), amount: showMoney(toTopUp(forecast)) }) });
}

function forecastSummary(forecast) {
  if (forecast.renews_nothing) return t("forecast.nothing");
  if (forecast.covered_until === null) return t("forecast.beyond", { days: String(forecast.horizon_days) });
  return t("forecast.until", { date: longDate(forecast.covered_until), days: dayCount(forecast.days) });
}

// The band on every page: shown while the forecast's days are under the customer's low_balance_days.
async function forecastBand() {
  const settings = await api("GET", "/api/v1/profile/notifications");
  if (settings.low_balance_days === null || settings.low_balance_days === undefined) return;
  const forecast = await readForecast();
  if (forecast.days === null || forecast.days >= settings.low_balance_days) return;
  const band = $("#forecast-band");
  band.replaceChildren(t("forecast.band", { date: longDate(forecast.covered_until), days: dayCount(forecast.days) }), " ",
    el("a", { href: "/balance#forecast", text: t("forecast.band_link") }));
  band.hidden = false;
}

async function download(path, fallbackName) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${session.token}` } });
  if (!response.ok) {
    let error = { code: `http_${response.status}`, message: "" };
    try { error = (await response.json()).error || error; } catch (notJson) { /* keep the generic one */ }
    if (response.status >= 500) throw unavailable(response.status, error);
    throw new ApiError(response.status, error);
  }
  const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: named ? named[1] : fallbackName });
  document.body.append(link);
  link.click();
  link.remove();
}

async function showForecast() {
  const forecast = await readForecast();
  $("#forecast-summary").textContent = forecastSummary(forecast);
  const stops = $("#forecast-stops");
  if (forecast.stops) {
    stops.textContent = t("forecast.stops", { order: forecast.stops.order_id, plan: forecast.stops.plan_name,
      date: longDate(forecast.stops.on), amount: showMoney(forecast.stops.amount) });
    stops.hidden = false;
  }
  $("#forecast-details").hidden = forecast.renewals.length === 0;
  fillTable($("#forecast-renewals"), forecast.renewals, (renewal) => row(showDate(renewal.on),
    el("a", { href: `/orders/${renewal.order_id}`, text: renewal.order_id }),
    t(`forecast.kinds.${renewal.kind}`, { plan: renewal.plan_name, months: String(renewal.period_months) }),
    el("td", { class: "num", text: showMoney(renewal.amount) }), el("td", { class: "num", text: showMoney(renewal.balance_after) })));
}

function statementForms() {
  const today = new Date();
  const iso = (day) => `${day.getFullYear()}-${String(day.getMonth() + 1).padStart(2, "0")}-${String(day.getDate()).padStart(2, "0")}`;
  const statement = $("#statement-form");
  // The month so far, by default: an accountant's usual period.
  $("#f-statement-from").value = iso(new Date(today.getFullYear(), today.getMonth(), 1));
  $("#f-statement-to").value = iso(today);
  onSubmit(statement, (data) => download(`/api/v1/balance/statement?${new URLSearchParams(data)}`,
    `statement.${data.format}`));
  const archive = $("#archive-form");
  $("#f-archive-year").value = String(today.getFullYear());
  onSubmit(archive, (data) => download(`/api/v1/invoices/archive?${new URLSearchParams(data)}`, `invoices-${data.year}.zip`));
}

async function downloadPdf(invoice) {
  const response = await fetch(`/api/v1/invoices/${encodeURIComponent(invoice.id)}/pdf`, { headers: { Authorization: `Bearer ${session.token}` } });
  if (!response.ok) { notice(t(response.status >= 500 ? "errors.unavailable" : "errors.unexpected")); return; }
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: `${invoice.number.replace("/", "-")}.pdf` });
  document.body.append(link);
  link.click();
  link.remove();
}

// An invoice names its order by id; the customer knows it by its short number.
async function orderNumbers() {
  try {
    const orders = await api("GET", "/api/v1/orders/history?limit=100");
    return new Map(orders.items.map((order) => [order.id, order.number]));
  } catch (error) { return new Map(); }
}

function orderLink(numbers, orderId) {
  return orderId ? el("a", { href: `/orders/${encodeURIComponent(orderId)}`, text: numbers.get(orderId) || orderId }) : "–";
}

pages.invoices = async () => {
  const numbers = await orderNumbers();
  await fillPagedTable($("#invoices"), "/api/v1/invoices", (invoice) => row(
    el("a", { href: `/invoices/${invoice.id}`, text: invoice.number }), t(`invoices.kinds.${invoice.kind}`),
    showDate(invoice.issued_at), orderLink(numbers, invoice.order_id), el("td", { class: "num", text: showMoney(invoice.gross) }),
    el("td", {}, el("a", { class: "button small", href: `/invoices/${invoice.id}`, text: t("invoices.view"), "aria-label": `${t("invoices.view")} ${invoice.number}` }), " ",
      el("button", { type: "button", class: "small", text: t("invoices.pdf"), "aria-label": `${t("invoices.pdf")} ${invoice.number}`, onclick: () => downloadPdf(invoice) }))));
};

pages.invoice = async () => {
  const invoice = await api("GET", `/api/v1/invoices/${encodeURIComponent(document.body.dataset.invoiceId)}`);
  const party = (who) => [who.company_name, who.name, who.address, who.postal_address && typeof who.postal_address === "object"
    ? Object.values(who.postal_address).filter(Boolean).join(", ") : who.postal_address, who.vat_id && `${t("profile.vat_id")}: ${who.vat_id}`, who.country]
    .filter((line, index, lines) => line && lines.indexOf(line) === index).join("\n");
  const settled = invoice.kind === "credit_note" ? t("invoice.returned", { date: showDate(invoice.settled_at) })
    : invoice.settled_at ? t("invoice.paid", { date: showDate(invoice.settled_at) }) : t("invoice.to_pay");
  const facts = { kind: t(`invoices.kinds.${invoice.kind}`), number: invoice.number, issued_at: showDate(invoice.issued_at),
    sale_date: showDate(invoice.sale_date), settled,
    tax_treatment: t(`invoice.treatment.${invoice.tax_treatment}`), order_id: invoice.order_id || "–", corrects: "–",
    seller: party(invoice.seller), buyer: party(invoice.buyer), net: showMoney(invoice.net), vat: showMoney(invoice.vat), gross: showMoney(invoice.gross) };
  for (const [name, value] of Object.entries(facts)) for (const node of $$(`[data-invoice="${name}"]`)) node.textContent = value;
  // A credit note names the corrected invoice by its number and date, never by the internal id.
  if (invoice.corrects) {
    $('[data-invoice="corrects"]').replaceChildren(el("a", { href: `/invoices/${encodeURIComponent(invoice.corrects)}`,
      text: invoice.corrects_issued_at ? t("invoice.corrects_of", { number: invoice.corrects_number, date: showDate(invoice.corrects_issued_at) })
        : invoice.corrects_number }));
  }
  if (invoice.order_id) $('[data-invoice="order_id"]').replaceChildren(orderLink(await orderNumbers(), invoice.order_id));
  fillTable($("#invoice-lines"), invoice.lines, (line) => row(line.description,
    line.period_from ? `${showDate(line.period_from)} – ${showDate(line.period_to)}` : "–",
    el("td", { class: "num", text: showNumber(line.quantity) }), el("td", { class: "num", text: showMoney(line.net) }),
    el("td", { class: "num", text: showPercent(line.vat_rate) }), el("td", { class: "num", text: showMoney(line.vat) }),
    el("td", { class: "num", text: showMoney(line.gross) })));
  $("#invoice-pdf").addEventListener("click", () => downloadPdf(invoice));
};

// ---- page states: loading until the page is filled, a not-found page for what does not exist

pages["not-found"] = () => {};

// The thing a page shows (an order, an invoice) does not exist, or is another customer's.
function showNotFound(name) {
  const main = $("#main");
  const heading = el("h1", { text: t("not_found.title") });
  document.title = `${t("not_found.title")} · ${t("app.name")}`;
  main.replaceChildren(heading, el("section", { class: "card not-found" },
    el("p", { text: MESSAGES[`not_found.${name}`] ?? t("not_found.text") }),
    el("p", {}, el("a", { class: "button", href: name === "order" ? "/orders" : name === "invoice" ? "/invoices" : "/profile",
      text: name === "order" ? t("nav.orders") : name === "invoice" ? t("nav.invoices") : t("not_found.home") }))));
  document.body.dataset.state = "not-found";
  heading.setAttribute("tabindex", "-1");
  heading.focus();
}

// Phones: the sections open and close behind the menu button.
function foldMenu() {
  const toggle = $(".menu-toggle");
  if (!toggle) return;
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    toggle.closest("header").classList.toggle("open", open);
  });
}

// ---- start

async function start() {
  const name = document.body.dataset.page;
  let profile = null;
  foldMenu();
  if (!PUBLIC_PAGES.includes(name)) {
    if (!session.token) { toLogin(); return; }
    try {
      profile = await api("GET", "/api/v1/profile");
    } catch (error) { document.body.dataset.state = "failed"; return; }
    if (profile.language !== document.documentElement.lang) { useLanguage(profile.language); return; }
    showAll("login", profile.login);
    $("#logout").addEventListener("click", async () => {
      try { await api("DELETE", "/api/v1/sessions/current"); } finally { session.token = null; location.assign("/login"); }
    });
  }
  try {
    if (profile) await forecastBand().catch(() => null);   // the band is a courtesy: a page works without it
    await pages[name](profile);
    document.body.dataset.state = document.body.dataset.state || "ready";
    document.body.dataset.ready = "true";
  } catch (error) {
    document.body.dataset.state = "failed";
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 404 && (name === "order" || name === "invoice")) {
      showNotFound(name);
      document.body.dataset.ready = "true";
      return;
    }
    if (error.status >= 400 && error.status < 500) notice(errorText(error));
  }
}

start();
