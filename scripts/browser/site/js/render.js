// render.js: writes results into the page, where the test reads them.
import { register } from "./state.js";
import { describe } from "./format.js";

register("render");

export function show(id, text) {
  document.getElementById(id).textContent = text;
}

export function items(list) {
  const ul = document.getElementById("items");
  for (const item of list) {
    const li = document.createElement("li");
    li.textContent = describe(item);
    ul.append(li);
  }
}

// Marks the element finished, with "ok" or "failed", for the test to wait on.
export function finish(id, ok) {
  document.getElementById(id).dataset.done = ok ? "ok" : "failed";
}
