// A typed use of the types openapi-typescript generates from the served
// document (written beside this file as api.ts by tests/test_generated_clients.py);
// `tsc --strict --noEmit` must compile it, and each @ts-expect-error must
// still be an error, or the types say less than the document.
import type { components, operations, paths } from "./api";

type DataSource = components["schemas"]["DataSource"];
type Create = components["schemas"]["DataSourceCreate"];
type Update = components["schemas"]["DataSourceUpdate"];
type Conflict = components["schemas"]["ConcurrencyConflict"];
type Problem = components["schemas"]["Problem"];
type Collection = paths["/api/v1/data-sources"];
type Page = Collection["get"]["responses"][200]["content"]["application/json"];
type ListQuery = NonNullable<operations["listDataSources"]["parameters"]["query"]>;
type Connector = components["schemas"]["Connector"];
type Catalog = paths["/api/v1/connectors"]["get"]["responses"][200]["content"]["application/json"];
type ConnectorKey = operations["getConnector"]["parameters"]["path"]["key"];

export const created: Create = {
  key: "crm-customers",
  name: "CRM Customer Export",
  description: "Daily customer data export from Salesforce.",
  connectorKey: "salesforce",
  sourceConfig: { objectName: "Contact", query: "SELECT Id, Email, Name FROM Contact" },
  fileFormat: null,
  syncMode: "incremental",
  schedule: { cron: "0 2 * * *", timezone: "America/New_York" },
  schemaKey: "customers",
  status: "active",
  lastSyncAt: "2026-03-16T02:00:00.000Z",
  lastSyncStatus: "success",
  recordCount: 45000,
};

export const stale: Update = { key: "crm-customers", status: "paused", rowVersion: 1 };

export function nextQuery(page: Page): ListQuery | null {
  const cursor: string | null = page.pagination.nextCursor;
  return cursor === null ? null : { limit: 1, cursor };
}

export function keys(page: Page): string[] {
  return page.data.map((source: DataSource) => source.key);
}

export function storedVersion(conflict: Conflict): number {
  return conflict.current.rowVersion;
}

export function messages(problem: Problem): string[] {
  return Object.values(problem.errors ?? {}).flat();
}

export function lastSync(source: DataSource): Date | null {
  return source.lastSyncAt === null ? null : new Date(source.lastSyncAt);
}

export function secretFields(catalog: Catalog, key: ConnectorKey): string[] {
  const found = catalog.data.find((connector: Connector) => connector.key === key);
  return found === undefined ? [] : found.secretFields;
}

export function fileFormats(connector: Connector): string[] {
  return connector.fileFormats ?? [];
}

export function configSchema(connector: Connector): Record<string, unknown> {
  return connector.schema;
}

// @ts-expect-error a create needs a name
export const nameless: Create = { key: "k" };
// @ts-expect-error syncMode is one of three
export const weekly: Update = { key: "k", syncMode: "weekly" };
// @ts-expect-error recordCount is a number
export const counted: Update = { key: "k", recordCount: "5" };
// @ts-expect-error an update names its source
export const keyless: Update = { name: "n" };
// @ts-expect-error a connector's fileFormats may be null
export const formatCount = (connector: Connector): number => connector.fileFormats.length;
// @ts-expect-error a connector has its secretFields
export const unmarked: Connector = { key: "k", title: "t", description: "", fileFormats: null, schema: {} };
