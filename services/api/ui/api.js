// Talking to the api: the key lives in sessionStorage and travels as X-API-Key, never in a URL.
const STORE = "callbridge-key";

export const key = () => sessionStorage.getItem(STORE);
export const remember = (value) => sessionStorage.setItem(STORE, value);
export const forget = () => sessionStorage.removeItem(STORE);

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function call(path, { method = "GET", params = {} } = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  const url = query.toString() ? `${path}?${query}` : path;
  const answer = await fetch(url, { method, headers: { "X-API-Key": key() || "" } });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    if (answer.status === 401) window.dispatchEvent(new Event("callbridge:logout"));
    throw new ApiError(answer.status, body.error || `HTTP ${answer.status}`);
  }
  return body;
}

// GET /events as a stream read by fetch (an EventSource cannot send the key header): calls
// onEvent(type) for each event, reconnects after a pause until `signal` aborts.
export async function follow(types, onEvent, signal) {
  while (!signal.aborted) {
    try {
      const answer = await fetch(`/events?types=${encodeURIComponent(types)}`,
        { headers: { "X-API-Key": key() || "" }, signal });
      if (!answer.ok) throw new ApiError(answer.status, "stream refused");
      const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
      let pending = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += value;
        const lines = pending.split("\n");
        pending = lines.pop();
        for (const line of lines) if (line.startsWith("event:")) onEvent(line.slice(6).trim());
      }
    } catch (error) {
      if (signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}
