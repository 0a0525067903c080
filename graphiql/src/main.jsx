// The GraphiQL page Known serves at "/": bundled by build.sh into assets/, so that the page
// loads nothing from outside Known's origin (air-gapped installs, strict CSP), and keeps
// everything it would store (tabs, headers with the secret key, history, theme) in this tab's
// memory only, never in localStorage: a secret key must not outlive the tab on a shared machine.
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import './page.css';

// memoryStorage implements the Storage interface GraphiQL asks for, in a Map that dies with
// the tab.
function memoryStorage() {
  const items = new Map();
  return {
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => {
      items.set(key, String(value));
    },
    removeItem: (key) => {
      items.delete(key);
    },
    clear: () => {
      items.clear();
    },
    get length() {
      return items.size;
    },
  };
}

const defaultQuery = `# Known's GraphQL API. The book icon on the left opens the docs.
#
# Dashboard and server calls need a project's secret key.
# Put it in Headers below:
#   {"Agent-Secret-Key": "sk_…"}
# Headers stay in this tab's memory: a reload forgets them.

query Project {
  project {
    id
    appId
    name
  }
}
`;

const fetcher = createGraphiQLFetcher({ url: new URL('/graphql', window.location.href).href });

createRoot(document.getElementById('graphiql')).render(
  <StrictMode>
    <GraphiQL
      fetcher={fetcher}
      storage={memoryStorage()}
      shouldPersistHeaders={false}
      defaultQuery={defaultQuery}
      defaultEditorToolsVisibility="headers"
    />
  </StrictMode>,
);
