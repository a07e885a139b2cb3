/* The directory session as a person sees it, on every portal and admin page.
 *
 * - Interaction (pointer, keys, scrolling, touch, focus) counts as activity: it is reported to
 *   the server at most once per `activity_interval_seconds`, the rate the server records it at.
 * - Deadlines come from the server (/session/status), kept as "this long from when the answer
 *   arrived", so a wrong clock in the browser changes nothing.
 * - A warning dialog opens `warning_seconds` before the end: "Stay signed in" for the
 *   inactivity deadline, a plain notice for the absolute one, which nothing extends.
 * - Every tab of the directory shares one state through a BroadcastChannel (the storage event
 *   where there is none): activity, new deadlines, and the end, which takes every tab to the
 *   sign-in page with the reason.
 * Without this script the server enforces the same policy on its own.
 */
(() => {
  "use strict";
  const config = document.currentScript.dataset;
  const bus = openBus("directory-session");
  const SIGNED_OUT = "directory:signed-out"; // sessionStorage: this tab submitted the sign-out

  if (!config.statusUrl) {
    // A page without a session: if this tab just signed out, tell the others (they confirm
    // with the server before leaving, so a stray message signs nobody out).
    const reason = sessionStorage.getItem(SIGNED_OUT);
    sessionStorage.removeItem(SIGNED_OUT);
    if (reason) bus.send({ type: "ended", reason });
    return;
  }

  const TICK_MS = 1000;
  const RETRY_MS = 5000; // after an error, so a server in trouble is not asked every second
  const dialog = document.getElementById("session-warning");
  const countdowns = dialog.querySelectorAll("[data-countdown]");
  const announcer = dialog.querySelector("[data-announce]");
  const signOutForm = document.querySelector("form[data-signout]");
  const state = {
    deadline: null, // Date.now() scale: when the session ends; null until the server says
    deadlineId: null, // the server's own timestamp of that deadline
    inactivityAt: null, // the server's timestamp of the inactivity deadline, for the page
    endsBy: null, // "idle_timeout" or "absolute_timeout"
    warningMs: 120000,
    intervalMs: 60000,
    lastReport: Date.now(), // when any tab last reported activity; loading this page was some
    lastCheck: 0,
    interacted: false, // interaction not yet reported
    dismissed: null, // the absolute deadline whose notice the person closed
    announced: null,
    inFlight: 0,
    endedElsewhere: null, // the reason another tab saw, for when the server can no longer say
    ending: false,
  };
  let queue = Promise.resolve(); // one request at a time, in order

  function openBus(name) {
    if ("BroadcastChannel" in window) {
      const channel = new BroadcastChannel(name);
      return {
        send: (message) => channel.postMessage(message),
        listen: (handler) => channel.addEventListener("message", (event) => handler(event.data)),
      };
    }
    return {
      send: (message) => {
        try {
          localStorage.setItem(name, JSON.stringify({ ...message, nonce: Math.random() }));
        } catch (ignored) {
          /* storage full or disabled: this tab still works on its own */
        }
      },
      listen: (handler) =>
        window.addEventListener("storage", (event) => {
          if (event.key === name && event.newValue) handler(JSON.parse(event.newValue));
        }),
    };
  }

  function adopt(answer) {
    const chosen = answer.ends_by === "idle_timeout" ? answer.inactivity_deadline : answer.absolute_deadline;
    const deadline = {
      deadline: Date.now() + (Date.parse(chosen) - Date.parse(answer.server_time)),
      deadlineId: chosen,
      inactivityAt: answer.inactivity_deadline,
      endsBy: answer.ends_by,
      warningMs: answer.warning_seconds * 1000,
      intervalMs: answer.activity_interval_seconds * 1000,
    };
    Object.assign(state, deadline);
    bus.send({ type: "deadline", ...deadline });
    render();
  }

  function ask(url, init) {
    state.inFlight += 1;
    state.lastCheck = Date.now();
    queue = queue.then(() => request(url, init)).finally(() => (state.inFlight -= 1));
    return queue;
  }

  async function request(url, init) {
    if (state.ending) return;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, ...init });
      if (response.status === 401) end((await response.json()).reason || state.endedElsewhere || "signed_out");
      else if (response.ok) adopt(await response.json());
      else if (response.status === 400) state.lastCheck = 0; // CSRF token replaced by a sign-in elsewhere: ask the status
    } catch (ignored) {
      /* offline for a moment: the next tick asks again */
    }
  }

  function check() {
    if (!state.inFlight) ask(config.statusUrl);
  }

  function report() {
    state.interacted = false;
    state.lastReport = Date.now();
    bus.send({ type: "reported", at: state.lastReport });
    ask(config.activityUrl, { method: "POST", body: new URLSearchParams({ csrf_token: config.csrf }) });
  }

  function end(reason) {
    if (state.ending) return;
    state.ending = true;
    bus.send({ type: "ended", reason });
    const here = location.pathname + location.search;
    location.assign(`${config.signInUrl}?${new URLSearchParams({ ended: reason, next: here })}`);
  }

  function interaction() {
    // While "Are you still there?" is open only its buttons answer it.
    if (dialog.open && state.endsBy === "idle_timeout") return;
    state.interacted = true;
    if (Date.now() - state.lastReport >= state.intervalMs) report();
  }

  function tick() {
    if (state.ending) return;
    const now = Date.now();
    if (state.interacted && now - state.lastReport >= state.intervalMs) report();
    else if (checkDue(now)) check();
    render();
  }

  function checkDue(now) {
    const since = now - state.lastCheck;
    if (state.deadline === null) return since >= RETRY_MS; // unknown (an error, an answer awaited)
    if (now >= state.deadline) return state.lastCheck < state.deadline || since >= RETRY_MS; // the server decides
    return since >= state.intervalMs; // notices an ending elsewhere
  }

  function render() {
    if (state.deadline === null) return;
    showInactivityDeadline(state.inactivityAt);
    const left = state.deadline - Date.now();
    const variant = state.endsBy === "absolute_timeout" ? "absolute" : "idle";
    if (left > state.warningMs || (variant === "absolute" && state.dismissed === state.deadlineId)) {
      if (dialog.open) dialog.close();
      return;
    }
    if (!dialog.open || dialog.dataset.variant !== variant) showWarning(variant);
    const seconds = Math.ceil(Math.max(0, left) / 1000);
    const text = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    countdowns.forEach((node) => (node.textContent = text));
    if ((seconds % 30 === 0 || seconds === 10) && seconds !== state.announced) {
      state.announced = seconds;
      announcer.textContent = `${spoken(seconds)} left.`;
    }
  }

  function showInactivityDeadline(moment) {
    // The page says when the session ends if inactive; activity since it loaded moved that.
    for (const node of document.querySelectorAll('time[data-deadline="inactivity"]')) {
      if (!moment || node.dateTime === moment) continue;
      node.dateTime = moment;
      node.textContent = `${new Date(moment).toISOString().slice(0, 19).replace("T", " ")} UTC`;
    }
  }

  function showWarning(variant) {
    dialog.dataset.variant = variant;
    dialog.querySelectorAll("[data-when]").forEach((node) => (node.hidden = node.dataset.when !== variant));
    dialog.setAttribute("aria-labelledby", variant === "absolute" ? "session-warning-title-absolute" : "session-warning-title");
    announcer.textContent = "";
    if (!dialog.open) dialog.showModal();
    dialog.querySelector(variant === "absolute" ? "[data-dismiss]" : "[data-stay]").focus();
  }

  function spoken(seconds) {
    const minutes = Math.floor(seconds / 60);
    const rest = seconds % 60;
    const parts = [];
    if (minutes) parts.push(`${minutes} minute${minutes === 1 ? "" : "s"}`);
    if (rest || !minutes) parts.push(`${rest} second${rest === 1 ? "" : "s"}`);
    return parts.join(" ");
  }

  function stay() {
    dialog.close();
    state.deadline = null; // unknown until the server answers the report
    report();
  }

  function dismiss() {
    state.dismissed = state.deadlineId;
    dialog.close();
  }

  bus.listen((message) => {
    if (state.ending) return;
    if (message.type === "reported") {
      state.lastReport = Math.max(state.lastReport, message.at);
    } else if (message.type === "deadline") {
      const { type, ...deadline } = message;
      Object.assign(state, deadline);
      render();
    } else if (message.type === "ended") {
      // Confirm with the server; its answer carries the reason if this tab is the first to ask.
      state.endedElsewhere = message.reason;
      ask(config.statusUrl);
    }
  });

  dialog.querySelector("[data-stay]").addEventListener("click", stay);
  dialog.querySelector("[data-dismiss]").addEventListener("click", dismiss);
  dialog.querySelector("[data-signout-now]").addEventListener("click", () => signOutForm.requestSubmit());
  dialog.addEventListener("cancel", (event) => {
    // Escape: a key press is the person answering, so it counts as staying (or closes the notice).
    event.preventDefault();
    if (state.endsBy === "idle_timeout") stay();
    else dismiss();
  });
  signOutForm.addEventListener("submit", () => sessionStorage.setItem(SIGNED_OUT, "signed_out"));

  for (const type of ["pointermove", "pointerdown", "keydown", "wheel", "touchstart", "focus"]) {
    window.addEventListener(type, interaction, { passive: true, capture: true });
  }
  document.addEventListener("scroll", interaction, { passive: true, capture: true });
  document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && check());
  window.addEventListener("pageshow", (event) => event.persisted && check());

  setInterval(tick, TICK_MS);
  check();
})();
