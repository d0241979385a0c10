// api.js: JSON from the proxied API route (an upstream HTTP server behind
// the proxy) and one static JSON file.
import { register } from "./state.js";

register("api");

// Each answer must parse and carry the field named here.
export const sources = [
  ["/api/items", "items"],
  ["/api/config", "config"],
  ["/api/user", "user"],
  ["/api/stats", "stats"],
  ["/data/strings.json", "greeting"],
];

async function getJson(path, field) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: status ${response.status}`);
  const body = await response.json();
  if (!(field in body)) throw new Error(`${path}: no "${field}" in the answer`);
  return body;
}

// Resolves to the answers by path; rejects on the first failure.
export async function loadAll() {
  const answers = await Promise.all(sources.map(([path, field]) => getJson(path, field)));
  return Object.fromEntries(sources.map(([path], i) => [path, answers[i]]));
}
