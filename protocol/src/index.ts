export * from './api.js';
export * from './binary.js';
