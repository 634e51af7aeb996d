/*
 * Tacit account page (/account): sign in, list the account's devices, and lock, wipe or
 * restore one. Served by the sync server; see docs/PROTOCOL.md, "The /account web page".
 *
 * What happens where:
 * - The account password is stretched HERE (Argon2id, hash-wasm, the account's salt and
 *   parameters from GET /v1/auth/params), then split with HKDF-SHA256 (Web Crypto) into
 *   the master key and the Ed25519 login key with exactly the labels and salt of
 *   app/vault/crypto.py (derive_account_keys). Only a signature over the origin-bound
 *   challenge goes to the server, with the TOTP or recovery code.
 * - The account signing key is HKDF-SHA256(master key, empty salt,
 *   info = protocol.SIGNING_KEY_HKDF_INFO), an Ed25519 seed. Orders are signed over
 *   b"tacit/v1/device-order\0" + the canonical JSON that protocol.canonical_order builds.
 * - This page signs in as one device of the account, "Account web page", whose id and
 *   key are also derived from the master key, so every browser reuses one device entry
 *   instead of adding one per visit.
 *
 * Invariants: nothing is written to cookies, localStorage, sessionStorage or IndexedDB.
 * The password field is cleared as soon as it is read; the stretched key, the master key
 * and every seed are zeroed once the non-extractable CryptoKeys are made. The access token
 * lives in this closure only; the refresh and control tokens are dropped on arrival.
 * Sign-out (or an ended session) forgets all of it. Text from the server is only ever
 * put into the page with textContent, never as HTML.
 */
"use strict";

(function () {
  // --- constants shared with the Python code (change them together) ------------------
  const LABEL_ACCOUNT_MASTER = "tacit/v1/account/master-key"; // app/vault/crypto.py
  const LABEL_ACCOUNT_LOGIN = "tacit/v1/account/login-key"; // app/vault/crypto.py
  const SIGNING_KEY_HKDF_INFO = "tacit/v1/account-signing-key"; // app/sync/protocol.py
  const WEB_DEVICE_ID_INFO = "tacit/v1/web-device/id"; // this page only
  const WEB_DEVICE_KEY_INFO = "tacit/v1/web-device/key"; // this page only
  const WEB_DEVICE_NAME = "Account web page";
  const LOGIN_SIGN_DOMAIN = "tacit/v1/login\u0000";
  const ORDER_SIGN_DOMAIN = "tacit/v1/device-order\u0000";
  const SIGNING_KEY_PROOF_DOMAIN = "tacit/v1/signing-key\u0000";
  const ORDER_VERSION = 1;
  const ORDER_KEYS = ["account_id", "action", "device_id", "issued_at", "order_id", "v"];
  const ORDER_ACTIONS = ["lock", "wipe", "restore"];
  const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
  const USERNAME_RE = /^[a-z0-9][a-z0-9._@+-]{2,63}$/;
  // RFC 8410 PKCS#8 wrapping of a raw 32-byte Ed25519 seed.
  const PKCS8_ED25519_PREFIX = hexBytes("302e020100300506032b657004220420");
  const KDF_MAX = { memory_kib: 4 * 1024 * 1024, iterations: 1000, parallelism: 255 };
  const REFRESH_EVERY_MS = 5000;

  const encoder = new TextEncoder();
  const subtle = window.crypto && window.crypto.subtle;

  // --- the signed-in state: memory only ------------------------------------------------
  let session = null; // {username, accountId, deviceId, accessToken, signingKey, signingPublic, canOrder}
  let refreshTimer = null;
  let busy = false;

  // --- bytes -----------------------------------------------------------------------------
  function hexBytes(hex) {
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  function b64encode(bytes) {
    let text = "";
    for (const b of bytes) text += String.fromCharCode(b);
    return btoa(text);
  }

  function b64decode(value) {
    if (typeof value !== "string" || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(value)) {
      throw new PageError("The server sent a malformed value.");
    }
    const text = atob(value);
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }

  function b64urlDecode(value) {
    const std = value.replace(/-/g, "+").replace(/_/g, "/");
    return b64decode(std + "=".repeat((4 - (std.length % 4)) % 4));
  }

  function wipe(...buffers) {
    for (const b of buffers) if (b) b.fill(0);
  }

  // --- canonical forms (mirror app/sync/protocol.py) ------------------------------------
  /** JSON.stringify, then escape everything outside printable ASCII as Python's
   * json.dumps(ensure_ascii=True) does (lowercase \uXXXX, surrogate pairs). */
  function jsonAscii(value) {
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  }

  /** protocol.canonical_order: exactly the six keys, sorted, no whitespace, ASCII; refuses
   * anything else so both sides sign and verify the same bytes or refuse. */
  function canonicalOrder(order) {
    if (order === null || typeof order !== "object" || Array.isArray(order)) throw new Error("an order is an object");
    const keys = Object.keys(order).sort();
    if (keys.join(",") !== ORDER_KEYS.join(",")) throw new Error("an order has exactly the keys " + ORDER_KEYS.join(", "));
    if (order.v !== ORDER_VERSION) throw new Error("unknown order version");
    for (const key of ["order_id", "account_id", "device_id"]) {
      if (typeof order[key] !== "string" || !UUID_RE.test(order[key])) throw new Error(`order ${key} is not a lowercase UUID`);
    }
    if (!ORDER_ACTIONS.includes(order.action)) throw new Error("unknown order action");
    const issued = order.issued_at;
    if (typeof issued !== "string" || !TIME_RE.test(issued) || formatTime(Date.parse(issued)) !== issued) {
      throw new Error("order issued_at is not a time as format_time writes it");
    }
    return encoder.encode("{" + keys.map((k) => jsonAscii(k) + ":" + jsonAscii(order[k])).join(",") + "}");
  }

  /** protocol.format_time: ISO-8601 UTC with milliseconds. */
  function formatTime(ms) {
    if (!Number.isFinite(ms)) return "";
    return new Date(ms).toISOString();
  }

  /** protocol.canonical_origin of the URL this page was loaded from: the browser's own
   * origin is already scheme://host[:port], lowercased, default port dropped. Computed
   * from where we are, never taken from the server's challenge response. */
  function pageOrigin() {
    return window.location.origin;
  }

  // --- key derivation --------------------------------------------------------------------
  async function hkdf(ikm, salt, info, length) {
    const key = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
    const bits = await subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt, info: encoder.encode(info) }, key, (length || 32) * 8);
    return new Uint8Array(bits);
  }

  /** An Ed25519 signing key from a 32-byte seed (non-extractable), and its public key. */
  async function ed25519FromSeed(seed) {
    const pkcs8 = concat(PKCS8_ED25519_PREFIX, seed);
    try {
      // Import once extractable only to read the public half (JWK "x"), then drop it.
      const temp = await subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
      const jwk = await subtle.exportKey("jwk", temp);
      const publicKey = b64urlDecode(jwk.x);
      jwk.d = "";
      const key = await subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
      return { key, publicKey };
    } finally {
      wipe(pkcs8);
    }
  }

  async function sign(key, message) {
    return new Uint8Array(await subtle.sign({ name: "Ed25519" }, key, message));
  }

  function uuidFromBytes(bytes) {
    const b = Uint8Array.from(bytes.subarray(0, 16));
    b[6] = (b[6] & 0x0f) | 0x40; // version 4 layout, as str(uuid.uuid4()) writes
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  function kdfFloor() {
    const data = document.body.dataset;
    return {
      memory_kib: Number(data.kdfMinMemoryKib),
      iterations: Number(data.kdfMinIterations),
      parallelism: Number(data.kdfMinParallelism),
    };
  }

  function checkKdf(kdf) {
    const floor = kdfFloor();
    const ok = kdf && kdf.algorithm === "argon2id" && kdf.version === 19 &&
      ["memory_kib", "iterations", "parallelism"].every((k) =>
        Number.isInteger(kdf[k]) && Number.isFinite(floor[k]) && kdf[k] >= floor[k] && kdf[k] <= KDF_MAX[k]);
    if (!ok) throw new PageError("The server offered key-derivation settings this page considers unsafe; it did not sign in.");
  }

  /** Password -> everything this page needs, via Argon2id and HKDF. The password, the
   * stretched key and the master key are zeroed before this returns. */
  async function deriveKeys(password, kdf) {
    const salt = b64decode(kdf.salt);
    const secret = encoder.encode(password.normalize("NFC")); // Passphrase.from_str
    let stretched = null;
    let master = null;
    const seeds = [];
    try {
      stretched = await window.hashwasm.argon2id({
        password: secret, salt, parallelism: kdf.parallelism, iterations: kdf.iterations,
        memorySize: kdf.memory_kib, hashLength: 32, outputType: "binary",
      });
      master = await hkdf(stretched, salt, LABEL_ACCOUNT_MASTER);
      const loginSeed = await hkdf(stretched, salt, LABEL_ACCOUNT_LOGIN);
      seeds.push(loginSeed);
      const empty = new Uint8Array(0);
      const signingSeed = await hkdf(master, empty, SIGNING_KEY_HKDF_INFO);
      seeds.push(signingSeed);
      const deviceSeed = await hkdf(master, empty, WEB_DEVICE_KEY_INFO);
      seeds.push(deviceSeed);
      const deviceIdBytes = await hkdf(master, empty, WEB_DEVICE_ID_INFO, 16);
      const login = await ed25519FromSeed(loginSeed);
      const signing = await ed25519FromSeed(signingSeed);
      const device = await ed25519FromSeed(deviceSeed);
      return {
        loginKey: login.key,
        signingKey: signing.key,
        signingPublic: signing.publicKey,
        device: { id: uuidFromBytes(deviceIdBytes), name: WEB_DEVICE_NAME, public_key: b64encode(device.publicKey) },
      };
    } finally {
      wipe(secret, stretched, master, ...seeds);
    }
  }

  // --- the API -------------------------------------------------------------------------
  class PageError extends Error {}

  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (session) headers.Authorization = "Bearer " + session.accessToken;
    let response;
    try {
      response = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit", cache: "no-store", redirect: "error", referrerPolicy: "no-referrer",
      });
    } catch (err) {
      throw new PageError("Cannot reach the server. Check the connection and try again.");
    }
    if (response.status === 204) return null;
    let doc = null;
    try {
      doc = await response.json();
    } catch (err) {
      doc = null;
    }
    if (!response.ok) {
      const error = (doc && doc.error) || {};
      throw new ApiError(response.status, String(error.code || "unknown"),
        String(error.message || `the server answered ${response.status}`), error.retry_after);
    }
    return doc;
  }

  function minutes(seconds) {
    const m = Math.max(1, Math.ceil(Number(seconds || 60) / 60));
    return m === 1 ? "a minute" : `${m} minutes`;
  }

  /** A sentence for the person in front of the page. */
  function describe(err) {
    if (err instanceof PageError) return err.message;
    if (!(err instanceof ApiError)) return "Something went wrong in this page: " + String(err && err.message || err);
    switch (err.code) {
      case "signature_invalid":
        return "Wrong username or password.";
      case "totp_invalid":
        return "Wrong authenticator code. Check the time on your phone and try the current code.";
      case "totp_replayed":
        return "That authenticator code was already used. Wait for the next code and try again.";
      case "totp_required":
        return "Enter the code from your authenticator app, or a recovery code.";
      case "recovery_code_invalid":
        return "That recovery code is wrong or was already used.";
      case "challenge_expired":
        return "Signing in took too long. Please try again.";
      case "account_locked":
        return `Too many failed sign-ins for this username. Try again in ${minutes(err.retryAfter)}.`;
      case "rate_limited":
        return `Too many attempts. Try again in ${minutes(err.retryAfter)}.`;
      case "device_lost":
        return "This page's device entry (\"Account web page\") was locked from another device. Restore it from the Tacit app, then sign in here again.";
      case "device_removed":
        return "This page's device entry (\"Account web page\") was removed; it cannot sign in again.";
      case "unauthorized":
      case "token_expired":
        return "Your session has ended. Please sign in again.";
      case "order_invalid":
        return "The server refused the order as badly dated: check that this computer's clock is correct, then try again.";
      case "order_signature_invalid":
        return "The server refused the order's signature. The signing key registered for this account is not the one your password gives.";
      case "order_replayed":
        return "The server refused the order as a replay. Refresh the list and try again.";
      case "device_state":
        return "That device is not in a state that allows this. Refresh the list.";
      case "signing_key_missing":
        return "This account has no signing key registered yet.";
      case "forbidden":
        return "A device cannot lock or wipe itself.";
      case "not_found":
        return "No such device in this account. Refresh the list.";
      case "unavailable":
        return "The server is busy. Try again in a moment.";
      default:
        return `The server refused: ${err.message} (${err.code}).`;
    }
  }

  // --- the page --------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);

  function setStatus(text) {
    $("status").textContent = text;
  }

  function showError(text) {
    const box = $("error");
    box.textContent = text;
    box.hidden = false;
    box.focus();
  }

  function clearError() {
    const box = $("error");
    box.textContent = "";
    box.hidden = true;
  }

  async function onSignIn(event) {
    event.preventDefault();
    if (busy) return;
    clearError();
    const username = $("username").value.trim().toLowerCase();
    const password = $("password").value;
    const code = $("code").value.trim();
    $("password").value = "";
    $("code").value = "";
    if (!USERNAME_RE.test(username)) {
      showError("Enter your username (3 to 64 letters, digits and . _ @ + -).");
      return;
    }
    if (!password) {
      showError("Enter your account password.");
      return;
    }
    if (!code) {
      showError("Enter the code from your authenticator app, or a recovery code.");
      return;
    }
    busy = true;
    $("signin-button").disabled = true;
    try {
      setStatus("Fetching the account's key-derivation settings…");
      const params = await api("GET", "/v1/auth/params?username=" + encodeURIComponent(username));
      checkKdf(params && params.kdf);
      setStatus("Deriving your keys in this browser (this can take a few seconds)…");
      const keys = await deriveKeys(password, params.kdf);
      setStatus("Signing in…");
      const challenge = await api("POST", "/v1/auth/challenge", { username });
      const message = concat(encoder.encode(LOGIN_SIGN_DOMAIN + pageOrigin() + "\u0000"), b64decode(challenge.challenge));
      const signature = await sign(keys.loginKey, message);
      const body = { challenge_id: challenge.challenge_id, username, signature: b64encode(signature), device: keys.device };
      if (/^\d{6}$/.test(code)) body.totp = code;
      else body.recovery_code = code;
      const tokens = await api("POST", "/v1/auth/login", body);
      // Keep only the access token; the refresh and control tokens are not needed here.
      session = {
        username, accountId: tokens.account_id, deviceId: tokens.device_id,
        accessToken: tokens.access_token, signingKey: keys.signingKey,
        signingPublic: keys.signingPublic, canOrder: false,
      };
      await checkSigningKey();
      $("who").textContent = username;
      $("signin").hidden = true;
      $("account").hidden = false;
      setStatus("Signed in.");
      await loadDevices();
      refreshTimer = window.setInterval(() => { loadDevices().catch(() => {}); }, REFRESH_EVERY_MS);
      $("devices-title").focus();
    } catch (err) {
      setStatus("");
      forget();
      showError(describe(err));
    } finally {
      busy = false;
      $("signin-button").disabled = false;
    }
  }

  /** Compare the registered signing key with ours; register ours if there is none (the
   * protocol's first step for every client). Orders stay disabled on a mismatch. */
  async function checkSigningKey() {
    const note = $("signing-key-note");
    const ours = b64encode(session.signingPublic);
    let registered = null;
    try {
      registered = (await api("GET", "/v1/account/signing-key")).public_key;
    } catch (err) {
      if (!(err instanceof ApiError && err.code === "signing_key_missing")) throw err;
      const proof = await sign(session.signingKey,
        concat(encoder.encode(SIGNING_KEY_PROOF_DOMAIN), encoder.encode(session.accountId)));
      registered = (await api("PUT", "/v1/account/signing-key", { public_key: ours, proof: b64encode(proof) })).public_key;
    }
    session.canOrder = registered === ours;
    note.hidden = session.canOrder;
    note.textContent = session.canOrder ? "" :
      "The signing key registered for this account is not the one your password derives, so " +
      "your devices would refuse orders from here. Open the Tacit app on a device you trust " +
      "and sign in again there to re-register it. Lock and wipe are disabled on this page.";
  }

  async function loadDevices() {
    if (!session) return;
    let list;
    try {
      list = await api("GET", "/v1/devices");
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        signOutLocally();
        showError(describe(err));
        return;
      }
      throw err;
    }
    if (session) renderDevices(list);
  }

  function timeText(iso) {
    if (!iso) return "";
    const ms = Date.parse(iso);
    return Number.isFinite(ms) ? new Date(ms).toLocaleString() : iso;
  }

  function timeElement(iso) {
    const el = document.createElement("time");
    el.dateTime = iso;
    el.textContent = timeText(iso);
    return el;
  }

  function orderCell(order) {
    const cell = document.createElement("td");
    if (!order) {
      cell.textContent = "none";
      return cell;
    }
    const what = { lock: "Lock", wipe: "Wipe", restore: "Restore" }[order.action] || order.action;
    cell.append(what + " sent ", timeElement(order.received_at));
    if (order.action === "restore") cell.append(" (done)");
    else if (order.acked_at) cell.append(", took effect ", timeElement(order.acked_at));
    else cell.append(", waiting for the device to come online");
    return cell;
  }

  function actionsFor(device) {
    if (device.current) return [];
    const pendingWipe = device.order && device.order.action === "wipe";
    switch (device.state) {
      case "active":
        return ["lock", "wipe"];
      case "lost":
        return pendingWipe ? [] : ["restore", "wipe"];
      case "locked":
        return ["restore", "wipe"];
      default:
        return [];
    }
  }

  function renderDevices(list) {
    const rows = $("device-rows");
    const fragment = document.createDocumentFragment();
    for (const device of list) {
      const tr = document.createElement("tr");
      tr.dataset.deviceId = device.id;
      const name = document.createElement("td");
      name.textContent = device.name + (device.current ? " (this page)" : "");
      const id = document.createElement("td");
      id.className = "id";
      id.textContent = device.id;
      const seen = document.createElement("td");
      seen.append(timeElement(device.last_seen_at));
      const state = document.createElement("td");
      state.className = "state state-" + device.state;
      state.textContent = device.state;
      const actions = document.createElement("td");
      for (const action of actionsFor(device)) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = action[0].toUpperCase() + action.slice(1);
        button.setAttribute("aria-label", `${button.textContent} ${device.name}`);
        button.dataset.action = action;
        if (action === "wipe") button.className = "danger";
        button.disabled = !session.canOrder;
        button.addEventListener("click", () => onOrder(device, action));
        actions.append(button);
      }
      tr.append(name, id, seen, state, orderCell(device.order), actions);
      fragment.append(tr);
    }
    rows.replaceChildren(fragment);
  }

  async function onOrder(device, action) {
    if (!session || busy) return;
    clearError();
    if (action === "wipe" && !window.confirm(
      `Wipe "${device.name}"? Its keys and local files will be destroyed when it next comes online. ` +
      "Notes it synced stay on your other devices. This cannot be undone.")) {
      return;
    }
    busy = true;
    try {
      const order = {
        v: ORDER_VERSION, order_id: window.crypto.randomUUID(), account_id: session.accountId,
        device_id: device.id, action, issued_at: formatTime(Date.now()),
      };
      const signature = await sign(session.signingKey, concat(encoder.encode(ORDER_SIGN_DOMAIN), canonicalOrder(order)));
      await api("POST", `/v1/devices/${device.id}/orders`, { order, signature: b64encode(signature) });
      const done = { lock: "Lock order sent", wipe: "Wipe order sent", restore: "Restored" }[action];
      setStatus(`${done}: ${device.name}.` + (action === "restore" ? " Unlock it on the device with your account password." : ""));
      await loadDevices();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) signOutLocally();
      showError(describe(err));
    } finally {
      busy = false;
    }
  }

  /** Drop every secret this page holds. */
  function forget() {
    if (session) {
      session.accessToken = "";
      session.signingKey = null;
      wipe(session.signingPublic);
    }
    session = null;
  }

  function signOutLocally() {
    if (refreshTimer !== null) window.clearInterval(refreshTimer);
    refreshTimer = null;
    forget();
    $("device-rows").replaceChildren();
    $("who").textContent = "";
    $("signing-key-note").hidden = true;
    $("account").hidden = true;
    $("signin").hidden = false;
  }

  async function onSignOut() {
    clearError();
    if (session) {
      try {
        await api("POST", "/v1/auth/logout", {});
      } catch (err) {
        // Ending the server session is best effort; the page forgets everything anyway.
      }
    }
    signOutLocally();
    setStatus("Signed out.");
    $("username").focus();
  }

  async function supported() {
    if (!window.isSecureContext || !subtle) return "This page needs a secure connection (https).";
    if (!window.hashwasm || typeof window.hashwasm.argon2id !== "function") return "The key-derivation code did not load.";
    try {
      await subtle.importKey("pkcs8", concat(PKCS8_ED25519_PREFIX, new Uint8Array(32)), { name: "Ed25519" }, false, ["sign"]);
    } catch (err) {
      return "This browser cannot make Ed25519 signatures (Web Crypto). Use a current Chrome, Edge, Firefox or Safari.";
    }
    return null;
  }

  async function start() {
    $("signin-form").addEventListener("submit", onSignIn);
    $("signout").addEventListener("click", onSignOut);
    $("refresh").addEventListener("click", () => { clearError(); loadDevices().catch((err) => showError(describe(err))); });
    $("devices-title").tabIndex = -1;
    window.addEventListener("pagehide", signOutLocally);
    const problem = await supported();
    if (problem) {
      showError(problem);
      return;
    }
    $("signin-button").disabled = false;
  }

  // Pure functions, exposed for the cross-language tests (no secrets reachable here).
  window.TacitAccountPage = Object.freeze({ canonicalOrder, formatTime, pageOrigin });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
