// docs/STORAGE.md describes the schema the code makes: its version, every table and column, and
// every value of the kind-holding columns. A change to one without the other fails here.
#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "deltann/store.h"
#include "test_util.h"

namespace deltann {
namespace {

std::string storage_doc() {
  std::ifstream in(std::string(DELTANN_SOURCE_DIR) + "/docs/STORAGE.md");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The line of the doc's table whose first cell is `name` (in backticks).
std::string table_row(const std::string& doc, const std::string& name) {
  const std::string start = "| `" + name + "` |";
  const auto at = doc.find(start);
  if (at == std::string::npos) return "";
  return doc.substr(at, doc.find('\n', at) - at);
}

TEST(StorageDoc, StatesTheSchemaVersionOfTheCode) {
  const std::string doc = storage_doc();
  ASSERT_FALSE(doc.empty()) << "docs/STORAGE.md not found";
  std::smatch m;
  ASSERT_TRUE(std::regex_search(doc, m, std::regex(R"(schema version (\d+))")));
  EXPECT_EQ(std::stoi(m[1]), kSchemaVersion) << "docs/STORAGE.md's title names another version";
  EXPECT_NE(doc.find("| " + std::to_string(kSchemaVersion) + " |"), std::string::npos)
      << "the Versions table has no row for version " << kSchemaVersion;
}

TEST(StorageDoc, DescribesEveryTableAndColumn) {
  const std::string doc = storage_doc();
  test::TempDir dir;
  { Store store(dir / "schema.db"); }
  SQLite::Database db((dir / "schema.db").string());
  SQLite::Statement tables(db, "SELECT name FROM sqlite_master WHERE type = 'table'");
  int seen = 0;
  while (tables.executeStep()) {
    const std::string table = tables.getColumn(0).getString();
    const std::string row = table_row(doc, table);
    ASSERT_FALSE(row.empty()) << "table " << table << " is not in docs/STORAGE.md";
    SQLite::Statement columns(db, "PRAGMA table_info(" + table + ")");
    while (columns.executeStep()) {
      const std::string column = columns.getColumn(1).getString();
      EXPECT_NE(row.find("`" + column + "`"), std::string::npos)
          << "column " << table << "." << column << " is not in docs/STORAGE.md";
    }
    ++seen;
  }
  EXPECT_GE(seen, 7);
}

TEST(StorageDoc, ListsEveryValueOfTheKindColumns) {
  const std::string doc = storage_doc();
  const auto check = [&](const std::string& column, const auto& values) {
    const std::string row = table_row(doc, column);
    ASSERT_FALSE(row.empty()) << column << " has no row in docs/STORAGE.md";
    for (const auto& value : values)
      EXPECT_NE(row.find("`" + std::string(to_string(value)) + "`"), std::string::npos)
          << column << " value " << to_string(value) << " is not in docs/STORAGE.md";
  };
  check("images.status", kImageStatuses);
  check("variants.status", kVariantStatuses);
  check("failures.stage", kFailureStages);
  check("failures.symptom", kFailureSymptoms);
}

}  // namespace
}  // namespace deltann
