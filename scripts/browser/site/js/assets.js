// assets.js: checks, once the window's load event has fired, that every
// stylesheet and image the page names arrived and is usable.
import { register } from "./state.js";

register("assets");

// Resolves once the document and all its subresources have loaded.
export function loaded() {
  if (document.readyState === "complete") return Promise.resolve();
  return new Promise((resolve) => window.addEventListener("load", resolve, { once: true }));
}

// [name, ok] for every stylesheet and image of the document.
export function check() {
  const results = [];
  for (const link of document.querySelectorAll('link[rel="stylesheet"]')) {
    let rules = 0;
    try {
      rules = link.sheet ? link.sheet.cssRules.length : 0;
    } catch (e) {
      rules = 0;
    }
    results.push([link.getAttribute("href"), rules > 0]);
  }
  for (const img of document.querySelectorAll("img")) {
    results.push([img.getAttribute("src"), img.complete && img.naturalWidth > 0]);
  }
  return results;
}

// Whether theme.css, the last stylesheet, applied its colour.
export function themed() {
  return getComputedStyle(document.body).backgroundColor === "rgb(250, 250, 245)";
}
