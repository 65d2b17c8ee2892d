// The PostgreSQL test helpers are the package's own testing export (connectors/postgres-cdc's tests use them too).
export * from '../src/testing.js';
