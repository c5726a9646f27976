// The server's plain words for lot states, deposit states and formats (GET /api/words),
// loaded once per page into util.js's tables.

import { api } from "./api.js";
import { setWordTables } from "./util.js";

let loading = null;

/** Load the server's tables (once); the page keeps its copies if the server cannot answer. */
export function loadWords() {
  if (!loading) {
    loading = api("/api/words").then((tables) => {
      setWordTables(tables);
      return tables;
    }).catch(() => null);
  }
  return loading;
}
