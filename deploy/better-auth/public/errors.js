// One error type for every failed call, so the page can always show a status and a detail.

export class CallError extends Error {
  constructor(source, status, detail) {
    super(`${source}: ${status ? `${status} ` : ""}${detail}`);
    this.source = source;
    this.status = status;
    this.detail = detail;
  }
}

/** Turns an error body ({"detail": …} from taskgate, {"message": …} from Better Auth) into text. */
export async function detailOf(response) {
  let body;
  try {
    body = await response.json();
  } catch {
    return response.statusText || "no detail";
  }
  const detail = body?.detail ?? body?.message ?? body?.code;
  if (Array.isArray(detail)) {
    // FastAPI's 422 shape: a list of {loc, msg}.
    return detail.map((d) => `${(d.loc ?? []).slice(1).join(".") || "request"}: ${d.msg}`).join("; ");
  }
  return typeof detail === "string" ? detail : JSON.stringify(body);
}
