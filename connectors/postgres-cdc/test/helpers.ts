// The PostgreSQL test helpers of the postgres sink's package (one copy for both connectors).
export * from '@junction/connector-postgres/testing';
