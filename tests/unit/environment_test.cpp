// The environment grammar (environment.h) and resolving an environment against an engine's
// description (backend.h).
#include "deltann/environment.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/backend.h"
#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

using test::Contains;
using test::message_of;

TEST(EnvironmentParse, PlainFramework) {
  const Environment env = parse_environment("ort");
  EXPECT_EQ(env.framework, "ort");
  EXPECT_EQ(env.version, "");
  EXPECT_TRUE(env.conversion.empty());
  EXPECT_TRUE(env.knobs.empty());
  EXPECT_EQ(env.to_string(), "ort");
}

TEST(EnvironmentParse, Knobs) {
  const Environment env = parse_environment("ort:opt=all,threads=2");
  EXPECT_EQ(env.framework, "ort");
  const std::map<std::string, std::string> expected{{"opt", "all"}, {"threads", "2"}};
  EXPECT_EQ(env.knobs, expected);
  EXPECT_EQ(env.knob("opt"), "all");
  EXPECT_EQ(env.knob("threads"), "2");
  EXPECT_EQ(env.knob("device"), "");
  EXPECT_EQ(env.knob("device", "cpu"), "cpu");
}

TEST(EnvironmentParse, CanonicalOrderCommonKnobsFirstThenAlphabetical) {
  const Environment env =
      parse_environment("ort:zeta=1,threads=2,alpha=x,precision=fp16,device=cpu,opt=all");
  EXPECT_EQ(env.to_string(), "ort:opt=all,device=cpu,precision=fp16,threads=2,alpha=x,zeta=1");
}

TEST(EnvironmentParse, ToStringRoundTrips) {
  for (const std::string text :
       {"ort", "ort:opt=all,threads=2", "tvm@0.19:opt=4", "tflite@pytorch>onnx>tflite:threads=1",
        "tvm:opt=3,device=cuda:0,disable=FuseOps+FoldConstant",
        "opencv:opt=off,device=opencl:0,precision=fp16,threads=4,backend=default"}) {
    const Environment env = parse_environment(text);
    EXPECT_EQ(env.to_string(), text) << text;
    EXPECT_EQ(parse_environment(env.to_string()), env) << text;
  }
  // A non-canonical spelling converges to the canonical one and then stays there.
  const Environment messy = parse_environment("ort:threads=2,opt=all");
  EXPECT_EQ(messy.to_string(), "ort:opt=all,threads=2");
  EXPECT_EQ(parse_environment(messy.to_string()), messy);
}

TEST(EnvironmentParse, VersionAfterAt) {
  const Environment env = parse_environment("tvm@0.19:opt=4");
  EXPECT_EQ(env.framework, "tvm");
  EXPECT_EQ(env.version, "0.19");
  EXPECT_TRUE(env.conversion.empty());
  EXPECT_EQ(env.knob("opt"), "4");
  EXPECT_EQ(parse_environment("ort@1.17.3").version, "1.17.3");
}

TEST(EnvironmentParse, ConversionChainWithAsciiArrow) {
  const Environment env = parse_environment("tflite@onnx>tflite");
  EXPECT_EQ(env.framework, "tflite");
  EXPECT_EQ(env.version, "");
  EXPECT_EQ(env.conversion, (std::vector<std::string>{"onnx", "tflite"}));
  EXPECT_EQ(env.to_string(), "tflite@onnx>tflite");
}

TEST(EnvironmentParse, ConversionChainWithUnicodeArrow) {
  const Environment env = parse_environment("tflite@pytorch\u2192onnx\u2192tflite:threads=1");
  EXPECT_EQ(env.conversion, (std::vector<std::string>{"pytorch", "onnx", "tflite"}));
  EXPECT_EQ(env.knob("threads"), "1");
  // The canonical text uses the ASCII arrow, and both spellings give the same environment.
  EXPECT_EQ(env.to_string(), "tflite@pytorch>onnx>tflite:threads=1");
  EXPECT_EQ(env, parse_environment("tflite@pytorch>onnx>tflite:threads=1"));
}

TEST(EnvironmentParse, ValuesWithPlusAndColon) {
  const Environment env = parse_environment("tvm:device=cuda:0,disable=FuseOps+FoldConstant");
  EXPECT_EQ(env.knob("device"), "cuda:0");
  EXPECT_EQ(env.knob("disable"), "FuseOps+FoldConstant");
  EXPECT_EQ(env.knobs.size(), 2u);
  EXPECT_EQ(env.to_string(), "tvm:device=cuda:0,disable=FuseOps+FoldConstant");
}

// Every message quotes the whole input and says what is wrong.
void expect_invalid(const std::string& text, const std::string& reason) {
  const std::string message = message_of<Error>([&] { parse_environment(text); });
  EXPECT_TRUE(Contains(message, "'" + text + "'")) << "input: " << text;
  EXPECT_TRUE(Contains(message, reason)) << "input: " << text;
}

TEST(EnvironmentParse, EmptyStringIsAnError) { expect_invalid("", "empty"); }

TEST(EnvironmentParse, UpperCaseFrameworkIsAnError) {
  expect_invalid("ORT", "framework 'ORT' must be a lower-case name");
  expect_invalid("Ort:opt=all", "lower-case");
}

TEST(EnvironmentParse, MissingEqualsIsAnError) {
  expect_invalid("ort:opt", "'opt' is not key=value");
  expect_invalid("ort:opt=all,threads", "'threads' is not key=value");
}

TEST(EnvironmentParse, EmptyValueIsAnError) {
  expect_invalid("ort:opt=", "knob 'opt' has an empty or invalid value");
}

TEST(EnvironmentParse, DuplicateKeyIsAnError) {
  expect_invalid("ort:opt=all,threads=2,opt=off", "knob 'opt' is given twice");
}

TEST(EnvironmentParse, NothingAfterColonIsAnError) { expect_invalid("ort:", "nothing after ':'"); }

TEST(EnvironmentParse, NothingAfterAtIsAnError) {
  expect_invalid("tflite@", "nothing after '@'");
  expect_invalid("tvm@:opt=3", "nothing after '@'");
}

TEST(EnvironmentParse, BadConversionStepIsAnError) {
  expect_invalid("tflite@onnx>>tflite", "conversion step '' is not a framework name");
}

// An engine description as a worker would report it, built by hand.
BackendInfo fake_info() {
  BackendInfo info;
  info.name = "fake";
  info.version = "1.0";
  info.devices = {"cpu"};  // cuda:0 is a device the engine knows, but this machine lacks
  info.knobs = {{"opt", {"off", "basic", "all"}, "all", "optimisation level"},
                {"device", {"cpu", "cuda:0"}, "cpu", "where to run"},
                {"threads", {}, "1", "intra-op threads"}};
  return info;
}

TEST(ResolveEnvironment, FillsDefaults) {
  const Environment resolved = resolve_environment(parse_environment("fake"), fake_info());
  const std::map<std::string, std::string> expected{
      {"opt", "all"}, {"device", "cpu"}, {"threads", "1"}};
  EXPECT_EQ(resolved.knobs, expected);
  EXPECT_EQ(resolved.to_string(), "fake:opt=all,device=cpu,threads=1");
}

// A set knob (passes to switch off): members in the knob's own order, "none" for the empty set.
TEST(ResolveEnvironment, SubsetKnobIsCanonicalAndChecked) {
  BackendInfo info = fake_info();
  Knob disable{"disable", {"FuseOps", "FoldConstant", "tirx.StorageRewrite"}, "none", "", true};
  info.knobs.push_back(disable);
  EXPECT_EQ(resolve_environment(parse_environment("fake"), info).knob("disable"), "none");
  const Environment a =
      resolve_environment(parse_environment("fake:disable=tirx.StorageRewrite+FuseOps"), info);
  const Environment b =
      resolve_environment(parse_environment("fake:disable=FuseOps+tirx.StorageRewrite"), info);
  EXPECT_EQ(a.knob("disable"), "FuseOps+tirx.StorageRewrite");
  EXPECT_EQ(a.to_string(), b.to_string());
  try {
    resolve_environment(parse_environment("fake:disable=FuseOps+Bogus"), info);
    FAIL() << "an unknown member was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no member 'Bogus'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("FuseOps, FoldConstant, tirx.StorageRewrite"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(resolve_environment(parse_environment("fake:disable=FuseOps+FuseOps"), info), Error);
}

// A count with a named "not at all" (TVM's `tune=off` or `tune=200`): the listed value, or a
// positive integer; at its default it stays out of the canonical string, so variants named
// before the knob existed keep their names.
TEST(ResolveEnvironment, IntegerKnobTakesItsValuesOrAPositiveInteger) {
  BackendInfo info = fake_info();
  Knob tune{"tune", {"off"}, "off", "trial budget", false, {}, true, true};
  info.knobs.push_back(tune);
  EXPECT_EQ(resolve_environment(parse_environment("fake"), info).to_string(),
            "fake:opt=all,device=cpu,threads=1");
  EXPECT_EQ(resolve_environment(parse_environment("fake:tune=off"), info).to_string(),
            "fake:opt=all,device=cpu,threads=1");
  EXPECT_EQ(resolve_environment(parse_environment("fake:tune=200"), info).knob("tune"), "200");
  for (const std::string bad : {"0", "-3", "on", "2x", "99999999999"}) {
    const std::string message = message_of<Error>(
        [&] { resolve_environment(parse_environment("fake:tune=" + bad), info); });
    EXPECT_TRUE(Contains(message, "one of off or a positive integer")) << message;
  }
  // The form survives the JSON a worker or build tool describes itself with.
  const BackendInfo back = backend_info_from_json(to_json(info));
  EXPECT_TRUE(back.knobs.back().integer);
  EXPECT_TRUE(back.knobs.back().omit_default);
}

TEST(ResolveEnvironment, KeepsGivenValues) {
  // 4 threads are within the cap on any machine (kThreadsPerCore x at least one core).
  const Environment resolved =
      resolve_environment(parse_environment("fake:threads=4,opt=off"), fake_info());
  EXPECT_EQ(resolved.to_string(), "fake:opt=off,device=cpu,threads=4");
}

TEST(ResolveEnvironment, InvalidValueListsValidValues) {
  const std::string message = message_of<Error>(
      [] { resolve_environment(parse_environment("fake:opt=max"), fake_info()); });
  EXPECT_TRUE(Contains(message, "fake:opt=max"));
  EXPECT_TRUE(Contains(message, "'max'"));
  EXPECT_TRUE(Contains(message, "off, basic, all"));
}

TEST(ResolveEnvironment, UnknownKnobListsKnobNames) {
  const std::string message = message_of<Error>(
      [] { resolve_environment(parse_environment("fake:turbo=on"), fake_info()); });
  EXPECT_TRUE(Contains(message, "'turbo'"));
  EXPECT_TRUE(Contains(message, "opt, device, threads"));
}

TEST(ResolveEnvironment, ThreadsMustBeAPositiveInteger) {
  for (const std::string bad : {"0", "-1", "2.5", "two", "00"}) {
    const std::string message = message_of<Error>(
        [&] { resolve_environment(parse_environment("fake:threads=" + bad), fake_info()); });
    EXPECT_TRUE(Contains(message, "positive integer")) << bad;
    EXPECT_TRUE(Contains(message, "'" + bad + "'")) << bad;
  }
}

TEST(ResolveEnvironment, ThreadCountTooLargeForAnIntIsAnError) {
  // Engines read threads as an int: 3000000000 does not fit one, the other fits no integer type.
  // Both must be reported like any other bad value, not escape as std::out_of_range.
  for (const std::string huge : {"3000000000", "99999999999999999999999"}) {
    const std::string message = message_of<Error>(
        [&] { resolve_environment(parse_environment("fake:threads=" + huge), fake_info()); });
    EXPECT_TRUE(Contains(message, "positive integer")) << huge;
  }
}

// A thread count beyond what the machine can use is refused at planning with the valid range:
// some engines grow a pool per thread and would use gigabytes until the timeout.
TEST(ResolveEnvironment, ThreadsAboveTheMachinesCapAreRefusedWithTheRange) {
  const int cores = usable_cores();
  ASSERT_GE(cores, 1);
  ASSERT_EQ(max_threads(), kThreadsPerCore * cores);
  const std::string cap = std::to_string(max_threads());
  EXPECT_EQ(
      resolve_environment(parse_environment("fake:threads=" + cap), fake_info()).knob("threads"),
      cap);
  for (const std::string& over : {std::to_string(max_threads() + 1), std::string("2147483647")}) {
    const std::string message = message_of<Error>(
        [&] { resolve_environment(parse_environment("fake:threads=" + over), fake_info()); });
    EXPECT_TRUE(Contains(message, "fake:threads=" + over)) << message;
    EXPECT_TRUE(Contains(message, "threads=" + over + ": must be 1.." + cap + " on this machine (" +
                                      std::to_string(kThreadsPerCore) + "x its " +
                                      std::to_string(cores) + " cores)"))
        << message;
  }
  // Another positive-integer knob is not a thread count.
  BackendInfo info = fake_info();
  info.knobs.push_back({"after", {}, "2", "image number"});
  EXPECT_EQ(resolve_environment(parse_environment("fake:after=2147483647"), info).knob("after"),
            "2147483647");
}

TEST(CheckInputShape, EqualOrDynamicDimensionsFit) {
  InputSpec spec;
  spec.shape = {1, 3, 224, 224};
  EXPECT_NO_THROW(check_input_shape("input", {1, 3, 224, 224}, spec));
  EXPECT_NO_THROW(check_input_shape("input", {-1, 3, -1, -1}, spec));
}

TEST(CheckInputShape, MismatchNamesBothShapesAndTheLayout) {
  InputSpec spec;
  spec.shape = {1, 3, 300, 300};
  EXPECT_EQ(message_of<Error>([&] {
              check_input_shape("input", {1, 3, 224, 224}, spec);
            }),
            "model input 'input' has shape [1,3,224,224] but the spec says [1,3,300,300] (NCHW)");
  spec.shape = {1, 300, 300, 3};
  spec.layout = Layout::NHWC;
  EXPECT_EQ(message_of<Error>([&] {
              check_input_shape("x", {-1, 3, 300, 300}, spec);
            }),
            "model input 'x' has shape [?,3,300,300] but the spec says [1,300,300,3] (NHWC)");
  // Another rank never fits, however open its dimensions.
  EXPECT_THROW(check_input_shape("x", {-1, -1, -1}, spec), Error);
}

TEST(ResolveEnvironment, AbsentDeviceIsUnsupported) {
  const std::string message = message_of<Unsupported>(
      [] { resolve_environment(parse_environment("fake:device=cuda:0"), fake_info()); });
  EXPECT_TRUE(Contains(message, "device=cuda:0 cannot run on this machine"));
  EXPECT_TRUE(Contains(message, "available: cpu"));
}

TEST(ResolveEnvironment, ValidButUnavailableValueIsUnsupportedWithTheReason) {
  BackendInfo info = fake_info();
  info.knobs.push_back(
      {"precision", {"f32", "bf16"}, "f32", "", false, {{"bf16", "no BF16 here"}}});
  EXPECT_EQ(resolve_environment(parse_environment("fake"), info).knob("precision"), "f32");
  try {
    resolve_environment(parse_environment("fake:precision=bf16"), info);
    FAIL() << "expected Unsupported";
  } catch (const Unsupported& e) {
    EXPECT_TRUE(Contains(std::string(e.what()), "precision=bf16 cannot run on this machine"));
    EXPECT_TRUE(Contains(std::string(e.what()), "no BF16 here"));
  }
  // A value that is not valid at all is still refused, not skipped.
  EXPECT_THROW(
      {
        try {
          resolve_environment(parse_environment("fake:precision=f8"), info);
        } catch (const Unsupported&) {
          FAIL() << "an invalid value must not be merely unsupported";
        }
      },
      Error);
}

TEST(BackendInfoJson, UnavailableValuesRoundTrip) {
  BackendInfo info = fake_info();
  info.knobs.push_back({"precision", {"f32", "bf16"}, "f32", "", false, {{"bf16", "why"}}});
  const BackendInfo again = backend_info_from_json(to_json(info));
  ASSERT_EQ(again.knobs.size(), info.knobs.size());
  EXPECT_EQ(again.knobs.back().unavailable, info.knobs.back().unavailable);
  EXPECT_TRUE(again.knobs.front().unavailable.empty());
  EXPECT_FALSE(to_json(fake_info())["knobs"][0].contains("unavailable"));
}

TEST(ResolveEnvironment, DeviceUnknownToTheEngineIsAnInvalidValue) {
  // Not a device this engine could ever use: a plain Error listing the devices it knows.
  try {
    resolve_environment(parse_environment("fake:device=tpu"), fake_info());
    FAIL() << "expected an Error";
  } catch (const Unsupported&) {
    FAIL() << "an unknown device is a bad request, not an unsupported one";
  } catch (const Error& e) {
    EXPECT_TRUE(Contains(e.what(), "cpu, cuda:0"));
  }
}

}  // namespace
}  // namespace deltann
