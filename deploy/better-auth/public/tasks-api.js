// The task calls of taskgate's gateway, each carrying the Better Auth JWT as a bearer token.
import { CallError, detailOf } from "./errors.js";

export class TasksApi {
  constructor(gatewayURL, session) {
    this.gatewayURL = gatewayURL;
    this.session = session;
  }

  async call(method, suffix, body) {
    const token = await this.session.bearer();
    const path = `/api/${encodeURIComponent(this.session.userId)}/tasks${suffix}`;
    let response;
    try {
      response = await fetch(this.gatewayURL + path, {
        method,
        headers: {
          Authorization: `Bearer ${token}`,
          Accept: "application/json",
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new CallError("Gateway", 0, `cannot reach the gateway at ${this.gatewayURL}`);
    }
    if (!response.ok) throw new CallError("Gateway", response.status, await detailOf(response));
    return response;
  }

  /** The tasks matching the filter and the total the gateway reports. */
  async list({ status, q }) {
    const params = new URLSearchParams({ status, sort: "-created", limit: "200" });
    if (q) params.set("q", q);
    const response = await this.call("GET", `?${params}`);
    const tasks = await response.json();
    const total = Number(response.headers.get("X-Total-Count") ?? tasks.length);
    return { tasks, total };
  }

  async create(title, description) {
    return (await this.call("POST", "", { title, description: description || null })).json();
  }

  async update(id, fields) {
    return (await this.call("PATCH", `/${id}`, fields)).json();
  }

  async toggle(id) {
    return (await this.call("PATCH", `/${id}/complete`)).json();
  }

  async remove(id) {
    await this.call("DELETE", `/${id}`);
  }
}
