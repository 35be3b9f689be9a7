// Type definitions for @nodb/client/redux.
import type { JSONValue, Operation, NodbClient, ConnectionState } from './index.js';

export interface SetStateAction<S = JSONValue> { type: string; view: string; state: S; seq: number; reset: boolean }
export interface ApplyPatchAction { type: string; view: string; ops: Operation[]; seq: number }
export interface ConnectionAction { type: string; state: ConnectionState }

interface AnyAction { type: string; [k: string]: unknown }
interface StoreLike { dispatch(action: any): unknown }

export const DEFAULT_PREFIX: 'nodb';
/** "nodb/SET_STATE" etc. for the default prefix. */
export const SET_STATE: string;
export const APPLY_PATCH: string;
export const CONNECTION: string;
export function actionTypes(prefix?: string): { SET_STATE: string; APPLY_PATCH: string; CONNECTION: string };

export function setState<S = JSONValue>(view: string, state: S, seq?: number, opts?: { prefix?: string; reset?: boolean }): SetStateAction<S>;
export function applyPatchAction(view: string, ops: Operation[], seq?: number, opts?: { prefix?: string }): ApplyPatchAction;

/** Reducer for one view's slice (null until the snapshot). */
export function viewReducer<S = JSONValue>(view: string, opts?: { prefix?: string; initialState?: S | null }): (state: S | null | undefined, action: AnyAction) => S | null;
/** Reducer for a map view name → state. */
export function viewsReducer(opts?: { prefix?: string }): (state: Record<string, JSONValue> | undefined, action: AnyAction) => Record<string, JSONValue>;
/** viewsReducer() with the default prefix. */
export const nodbReducer: (state: Record<string, JSONValue> | undefined, action: AnyAction) => Record<string, JSONValue>;
export function connectionReducer(opts?: { prefix?: string; initialState?: ConnectionState }): (state: ConnectionState | undefined, action: AnyAction) => ConnectionState;

/** Keeps the store in sync with a view (SET_STATE on snapshots, APPLY_PATCH per patch); returns a function that stops. */
export function syncView(store: StoreLike, client: NodbClient, view: string, actionPrefix?: string): () => void;
/** Dispatches CONNECTION actions on connection state changes; returns a function that stops. */
export function syncConnection(store: StoreLike, client: NodbClient, actionPrefix?: string): () => void;
