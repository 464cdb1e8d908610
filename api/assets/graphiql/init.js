// usergraph's own GraphiQL bootstrap (not third-party code).
//
// Loaded by index.html after React 18, ReactDOM 18 and GraphiQL 3 (UMD builds
// served from /assets/graphiql/). Kept out of index.html so that the page runs
// under a Content-Security-Policy with `script-src 'self'` (no inline script).
(function () {
  'use strict';

  var root = document.getElementById('graphiql');

  function fail(message) {
    root.textContent = 'GraphiQL could not start: ' + message;
    root.setAttribute('role', 'alert');
  }

  if (typeof window.React === 'undefined' || typeof window.ReactDOM === 'undefined' ||
      typeof window.GraphiQL === 'undefined') {
    fail('a script under /assets/graphiql/ did not load.');
    return;
  }

  // Full-height layout, set through the CSSOM (CSP-neutral, no inline style).
  [document.documentElement, document.body, root].forEach(function (el) {
    el.style.height = '100%';
    el.style.margin = '0';
  });
  document.body.style.overflow = 'hidden';

  // Same origin as the page: POST /graphql for queries and mutations.
  var httpUrl = window.location.origin + '/graphql';

  // Subscriptions over graphql-transport-ws on the same host (ws: for http:,
  // wss: for https:; CSP connect-src 'self' covers both).
  var wsUrl = (window.location.protocol === 'https:' ? 'wss://' : 'ws://') +
    window.location.host + '/graphql/ws';

  // GraphiQL's own fetcher sends the JSON of the Headers editor as HTTP
  // headers, so `{ "Authorization": "Bearer ..." }` there reaches POST /graphql;
  // for a subscription it becomes the connection_init payload, which is where
  // /graphql/ws reads the token.
  var fetcher = window.GraphiQL.createFetcher({ url: httpUrl, subscriptionUrl: wsUrl });

  // GraphiQL 3 honours shouldPersistHeaders for its tabs, but its query
  // history ("graphiql:queries" / "graphiql:favorites" in localStorage) still
  // records each run's headers, i.e. the bearer token. This storage wraps
  // localStorage and drops `headers` from history entries before they are
  // written, so no token is left behind in the browser.
  var NS = 'graphiql:';
  var HISTORY_KEYS = { 'graphiql:queries': 'queries', 'graphiql:favorites': 'favorites' };

  function withoutHeaders(key, value) {
    var field = HISTORY_KEYS[key];
    if (!field || typeof value !== 'string') return value;
    try {
      var parsed = JSON.parse(value);
      var items = parsed && parsed[field];
      if (Array.isArray(items)) {
        items.forEach(function (item) { if (item && typeof item === 'object') delete item.headers; });
      }
      return JSON.stringify(parsed);
    } catch (e) {
      return value;
    }
  }

  function graphiqlKeys(store) {
    var keys = [];
    for (var i = 0; i < store.length; i++) {
      var k = store.key(i);
      if (k && k.indexOf(NS) === 0) keys.push(k);
    }
    return keys;
  }

  var storage;
  try {
    var local = window.localStorage;
    // Scrub what earlier visits may have stored.
    Object.keys(HISTORY_KEYS).forEach(function (k) {
      var v = local.getItem(k);
      if (v !== null) local.setItem(k, withoutHeaders(k, v));
    });
    storage = {
      getItem: function (k) { return local.getItem(k); },
      setItem: function (k, v) { local.setItem(k, withoutHeaders(k, v)); },
      removeItem: function (k) { local.removeItem(k); },
      clear: function () { graphiqlKeys(local).forEach(function (k) { local.removeItem(k); }); },
      get length() { return graphiqlKeys(local).length; }
    };
  } catch (e) {
    storage = undefined; // no localStorage (e.g. blocked): GraphiQL falls back on its own
  }

  var defaultQuery = [
    '# usergraph GraphiQL. Ctrl-Enter (or the run button)',
    '# runs the operation under the cursor; the Docs',
    '# button (book icon, top left) shows the schema.',
    '#',
    '# `me` is null without an access token. Uncomment',
    '# the Register (or Login) mutation below, run it, copy',
    '# its accessToken, and put this in the Headers tab',
    '# at the bottom, then run Me again:',
    '#   { "Authorization": "Bearer <accessToken>" }',
    '# Headers stay in memory only (never saved in this',
    '# browser).',
    '',
    'query Me {',
    '  me {',
    '    id',
    '    email',
    '    displayName',
    '    roles { name }',
    '  }',
    '}',
    '',
    '# mutation Register {',
    '#   register(input: {',
    '#     email: "alice@example.com"',
    '#     password: "correct horse battery staple"',
    '#     displayName: "Alice"',
    '#   }) {',
    '#     accessToken',
    '#     refreshToken',
    '#     expiresIn',
    '#     user { id email }',
    '#   }',
    '# }',
    '',
    '# An admin (audit:read) can watch the audit log live:',
    '# subscription Audit {',
    '#   auditEvents { action actorId targetUserId createdAt }',
    '# }',
    '',
    '# mutation Login {',
    '#   login(input: {',
    '#     email: "alice@example.com"',
    '#     password: "correct horse battery staple"',
    '#   }) {',
    '#     accessToken',
    '#     refreshToken',
    '#     expiresIn',
    '#   }',
    '# }',
    ''
  ].join('\n');

  var element = window.React.createElement(window.GraphiQL, {
    fetcher: fetcher,
    defaultQuery: defaultQuery,
    // Tokens typed into the Headers editor stay in memory only.
    shouldPersistHeaders: false,
    storage: storage,
    isHeadersEditorEnabled: true,
    defaultEditorToolsVisibility: 'headers'
  });

  root.textContent = '';
  window.ReactDOM.createRoot(root).render(element);
})();
