// state.js: which modules ran. Each module registers itself when it is
// evaluated, so the count proves every module file arrived and parsed.
export const modules = [];

export function register(name) {
  modules.push(name);
}

register("state");
