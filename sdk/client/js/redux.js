// Redux binding for nodb: keep store slices in sync with server views.
//
//   import { nodbReducer, syncView } from '@nodb/client/redux';
//   const store = createStore(combineReducers({ nodb: nodbReducer }));
//   syncView(store, client, 'todos');          // state.nodb.todos follows the view
//
// or one slice per view with viewReducer('todos'). Redux itself is a peer
// dependency: this module does not import it.

import { applyPatch } from './patch.js';

export const DEFAULT_PREFIX = 'nodb';

/** Action types for a prefix: {SET_STATE, APPLY_PATCH, CONNECTION}. */
export function actionTypes(prefix = DEFAULT_PREFIX) {
  return {
    SET_STATE: `${prefix}/SET_STATE`,
    APPLY_PATCH: `${prefix}/APPLY_PATCH`,
    CONNECTION: `${prefix}/CONNECTION`,
  };
}

export const SET_STATE = actionTypes().SET_STATE;
export const APPLY_PATCH = actionTypes().APPLY_PATCH;
export const CONNECTION = actionTypes().CONNECTION;

/** Action creators. */
export const setState = (view, state, seq = 0, { prefix = DEFAULT_PREFIX, reset = false } = {}) => ({
  type: actionTypes(prefix).SET_STATE, view, state, seq, reset,
});
export const applyPatchAction = (view, ops, seq = 0, { prefix = DEFAULT_PREFIX } = {}) => ({
  type: actionTypes(prefix).APPLY_PATCH, view, ops, seq,
});

/**
 * A reducer for one view's slice: SET_STATE replaces it, APPLY_PATCH applies
 * the RFC 6902 ops immutably (structural sharing: untouched subtrees keep
 * their identity, so memoised selectors and React.memo skip them).
 */
export function viewReducer(view, { prefix = DEFAULT_PREFIX, initialState = null } = {}) {
  const t = actionTypes(prefix);
  return function reduceView(state = initialState, action) {
    if (!action || action.view !== view) return state;
    if (action.type === t.SET_STATE) return action.state;
    if (action.type === t.APPLY_PATCH) return applyPatch(state, action.ops);
    return state;
  };
}

/** A reducer factory for a map of views: state[view] is each view's state. */
export function viewsReducer({ prefix = DEFAULT_PREFIX } = {}) {
  const t = actionTypes(prefix);
  return function reduceViews(state = {}, action) {
    if (!action || typeof action.view !== 'string') return state;
    if (action.type === t.SET_STATE) return { ...state, [action.view]: action.state };
    if (action.type === t.APPLY_PATCH) return { ...state, [action.view]: applyPatch(state[action.view] ?? null, action.ops) };
    return state;
  };
}

/** viewsReducer() with the default "nodb" prefix: mount it where you like, e.g. combineReducers({nodb: nodbReducer}). */
export const nodbReducer = viewsReducer();

/** A reducer for the connection state ("connecting" | "open" | "closed"), fed by syncConnection. */
export function connectionReducer({ prefix = DEFAULT_PREFIX, initialState = 'connecting' } = {}) {
  const t = actionTypes(prefix);
  return (state = initialState, action) => (action?.type === t.CONNECTION ? action.state : state);
}

/**
 * Keeps a store in sync with a view: dispatches SET_STATE on the snapshot
 * (and on every reset snapshot after a reconnect) and APPLY_PATCH for each
 * patch. Returns a function that stops syncing (and unsubscribes).
 */
export function syncView(store, client, view, actionPrefix = DEFAULT_PREFIX) {
  const t = actionTypes(actionPrefix);
  return client.subscribe(view, (state, change) => {
    if (change.type === 'patch') store.dispatch({ type: t.APPLY_PATCH, view, ops: change.ops, seq: change.seq });
    else store.dispatch({ type: t.SET_STATE, view, state, seq: change.seq, reset: !!change.reset });
  });
}

/** Dispatches CONNECTION actions when the client's connection state changes. Returns an off function. */
export function syncConnection(store, client, actionPrefix = DEFAULT_PREFIX) {
  const t = actionTypes(actionPrefix);
  store.dispatch({ type: t.CONNECTION, state: client.state });
  return client.on('state', (state) => store.dispatch({ type: t.CONNECTION, state }));
}
