/** The OpenAPI document and the API reference page (see ./plugin.ts), and how routes describe themselves (./describe.ts). */
export {
  describeRoute,
  routeDocOf,
  ROUTE_DOC,
  ErrorShape,
  type RouteDoc,
  type ResponseDoc,
  type RouteSchema,
  type AnswerFits,
} from './describe.js';
export {
  openapiRoutes,
  jsonSchemaOf,
  OPENAPI_PATH,
  DOCS_PREFIX,
  TAGS,
  ERROR_SCHEMAS,
  type OpenApiOptions,
  type AccessDoc,
} from './plugin.js';
