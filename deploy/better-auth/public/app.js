// Wires the page: sign-up / sign-in / sign-out through Better Auth, and the task list through the
// gateway. Every failure ends up in the error banner; user text is only ever set as textContent.
import { CallError } from "./errors.js";
import { Session } from "./session.js";
import { TasksApi } from "./tasks-api.js";

const $ = (id) => document.getElementById(id);
const filter = { status: "all", q: "" };
let session;
let api;

function showError(err) {
  const text = err instanceof CallError ? err.message : `Unexpected error: ${err?.message ?? err}`;
  $("error-text").textContent = text;
  $("error-banner").dataset.status = String(err?.status ?? "");
  $("error-banner").hidden = false;
}

function clearError() {
  $("error-banner").hidden = true;
  $("error-text").textContent = "";
}

/** Runs an action with its button disabled, reporting any failure in the banner. */
async function guarded(button, action) {
  if (button) button.disabled = true;
  try {
    clearError();
    await action();
  } catch (err) {
    showError(err);
  } finally {
    if (button) button.disabled = false;
  }
}

function showSignedIn(signedIn) {
  $("auth-section").hidden = signedIn;
  $("tasks-section").hidden = !signedIn;
  $("user-box").hidden = !signedIn;
  $("user-email").textContent = signedIn ? session.email : "";
  if (!signedIn) $("task-list").replaceChildren();
}

function setAuthMode(mode) {
  const signUp = mode === "sign-up";
  $("auth-form").dataset.mode = mode;
  $("name-field").hidden = !signUp;
  $("auth-password").autocomplete = signUp ? "new-password" : "current-password";
  $("auth-submit").textContent = signUp ? "Create account" : "Sign in";
  $("tab-sign-in").setAttribute("aria-selected", String(!signUp));
  $("tab-sign-up").setAttribute("aria-selected", String(signUp));
}

function renderTask(task) {
  const item = $("task-template").content.firstElementChild.cloneNode(true);
  item.dataset.taskId = String(task.id);
  item.classList.toggle("done", task.completed);
  item.dataset.completed = String(task.completed);
  item.querySelector(".toggle").checked = task.completed;
  item.querySelector(".title").textContent = task.title;
  const description = item.querySelector(".description");
  description.textContent = task.description ?? "";
  description.hidden = !task.description;
  item.querySelector(".toggle").addEventListener("change", (event) =>
    guarded(event.target, async () => {
      await api.toggle(task.id);
      await refresh();
    }).then(() => {
      event.target.checked = item.dataset.completed === "true";
    }),
  );
  item.querySelector("[data-testid=task-edit]").addEventListener("click", () => startEdit(item, task));
  item.querySelector("[data-testid=task-delete]").addEventListener("click", (event) =>
    guarded(event.target, async () => {
      await api.remove(task.id);
      await refresh();
    }),
  );
  return item;
}

function startEdit(item, task) {
  const form = $("edit-template").content.firstElementChild.cloneNode(true);
  form.elements.title.value = task.title;
  form.elements.description.value = task.description ?? "";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(form.querySelector("[data-testid=edit-save]"), async () => {
      const description = form.elements.description.value.trim();
      await api.update(task.id, { title: form.elements.title.value, description: description || null });
      await refresh();
    });
  });
  const body = item.querySelector(".body");
  const actions = item.querySelector(":scope > .actions");
  form.querySelector("[data-testid=edit-cancel]").addEventListener("click", () => {
    form.replaceWith(body);
    actions.hidden = false;
  });
  body.replaceWith(form);
  actions.hidden = true;
  form.elements.title.focus();
}

let listRequests = 0;

async function refresh() {
  const mine = ++listRequests;
  const { tasks, total } = await api.list(filter);
  if (mine !== listRequests) return; // a newer filter or search has been asked for meanwhile
  $("task-list").replaceChildren(...tasks.map(renderTask));
  $("empty-state").hidden = tasks.length > 0;
  $("task-count").textContent = `${total} task${total === 1 ? "" : "s"}`;
}

async function enter() {
  showSignedIn(true);
  await refresh();
}

function bindAuth() {
  $("tab-sign-in").addEventListener("click", () => setAuthMode("sign-in"));
  $("tab-sign-up").addEventListener("click", () => setAuthMode("sign-up"));
  $("auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    guarded($("auth-submit"), async () => {
      const email = form.elements.email.value.trim();
      const password = form.elements.password.value;
      if (form.dataset.mode === "sign-up") {
        await session.signUp(form.elements.name.value.trim() || email, email, password);
      } else {
        await session.signIn(email, password);
      }
      form.reset();
      await enter();
    });
  });
  $("sign-out").addEventListener("click", (event) =>
    guarded(event.target, async () => {
      await session.signOut();
      showSignedIn(false);
    }),
  );
  $("error-dismiss").addEventListener("click", clearError);
}

function bindTasks() {
  $("new-task-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    guarded($("add-task"), async () => {
      await api.create(form.elements.title.value, form.elements.description.value.trim());
      form.reset();
      await refresh();
    });
  });
  for (const button of document.querySelectorAll("[data-status]")) {
    button.addEventListener("click", () => {
      filter.status = button.dataset.status;
      for (const b of document.querySelectorAll("[data-status]")) {
        b.setAttribute("aria-pressed", String(b === button));
      }
      guarded(null, refresh);
    });
  }
  let searchTimer;
  $("search").addEventListener("input", (event) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      filter.q = event.target.value.trim();
      guarded(null, refresh);
    }, 250);
  });
}

async function start() {
  const config = await (await fetch("/config.json")).json();
  session = new Session((err) => {
    showError(err);
    showSignedIn(false);
  });
  api = new TasksApi(config.gatewayURL, session);
  bindAuth();
  bindTasks();
  setAuthMode("sign-in");
  const signedIn = await session.renew();
  if (signedIn) {
    await enter();
  } else {
    showSignedIn(false);
  }
}

start().catch((err) => {
  showError(err);
  if (session) showSignedIn(false);
});
