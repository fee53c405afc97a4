// A small frontend written the way such frontends are (see index.html): the user id from Better Auth's session,
// the gateway URL from a NEXT_PUBLIC_ variable inlined at build time, URLSearchParams for the list query, a
// trailing slash on the collection, PUT with the fields the edit form has. Every call goes through api-client.mjs.
import { authClient, createApi } from "./api-client.mjs";

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
let userId; // undefined until a session is known: the first list call is /api/undefined/tasks with "Bearer null"
let editing = null;

function show(view) {
  $("sign-in").hidden = view !== "sign-in";
  $("tasks").hidden = view !== "tasks";
}

// own-frontend-usage:start
const api = createApi(process.env.NEXT_PUBLIC_TASKGATE_URL, () => show("sign-in"));

const listTasks = (params = {}) => api("GET", `/api/${userId}/tasks?${new URLSearchParams(params)}`);
const addTask = (title) => api("POST", `/api/${userId}/tasks/`, { title });
const editTask = (id, title, description) => api("PUT", `/api/${userId}/tasks/${id}`, { title, description });
// own-frontend-usage:end
const completeTask = (id) => api("PATCH", `/api/${userId}/tasks/${id}/complete`);
const deleteTask = (id) => api("DELETE", `/api/${userId}/tasks/${id}`);

/** Runs an action and shows its failure; a 401 has already sent the page to sign-in. */
async function attempt(action) {
  $("error").textContent = "";
  try {
    await action();
  } catch (err) {
    if (err.status !== 401) $("error").textContent = err.message;
  }
}

function taskItem(task) {
  const item = document.createElement("li");
  item.dataset.testid = "task";
  item.dataset.completed = String(task.completed);
  const toggle = Object.assign(document.createElement("input"), { type: "checkbox", checked: task.completed });
  toggle.dataset.testid = "complete";
  toggle.addEventListener("change", () => attempt(() => completeTask(task.id).then(refresh)));
  const title = Object.assign(document.createElement("span"), { textContent: task.title });
  title.dataset.testid = "title";
  const description = Object.assign(document.createElement("span"), { textContent: task.description ?? "" });
  description.dataset.testid = "description";
  const edit = Object.assign(document.createElement("button"), { type: "button", textContent: "Edit" });
  edit.dataset.testid = "edit";
  edit.addEventListener("click", () => {
    editing = task.id;
    $("edit-title").value = task.title;
    $("edit-description").value = task.description ?? "";
    $("edit-form").hidden = false;
  });
  const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "Delete" });
  remove.dataset.testid = "delete";
  remove.addEventListener("click", () => attempt(() => deleteTask(task.id).then(refresh)));
  item.append(toggle, title, description, edit, remove);
  return item;
}

async function refresh() {
  const status = $("status-filter").value;
  const tasks = await listTasks(status ? { status } : {});
  show("tasks");
  $("task-list").replaceChildren(...tasks.map(taskItem));
}

async function signedIn(result) {
  if (result.error) throw new Error(result.error.message);
  userId = result.data.user.id;
  await refresh();
}

$("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  const [email, password] = [$("email").value, $("password").value];
  attempt(async () => signedIn(await authClient.signIn.email({ email, password })));
});
$("sign-up-button").addEventListener("click", () => {
  const [email, password] = [$("email").value, $("password").value];
  attempt(async () => signedIn(await authClient.signUp.email({ name: email.split("@")[0], email, password })));
});
$("new-task").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(() => addTask($("new-title").value).then(refresh));
});
$("edit-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    await editTask(editing, $("edit-title").value, $("edit-description").value);
    $("edit-form").hidden = true;
    await refresh();
  });
});
$("status-filter").addEventListener("change", () => attempt(refresh));
$("other-list").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(() => api("GET", `/api/${encodeURIComponent($("other-user").value)}/tasks`));
});

const { data: session } = await authClient.getSession();
userId = session?.user.id;
await attempt(refresh);
