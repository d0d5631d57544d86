# Runs a binary Homebrew formula's `install` and `test do` blocks outside Homebrew, for the formula
# release/homebrew/generate.ts writes (test/e2e/dist_homebrew.test.ts): the few pieces of the
# Formula DSL it uses, with Homebrew's meaning, and minitest's assertions (which Homebrew's are).
#   ruby homebrew_harness.rb <formula.rb> <macos|linux> <arm|intel> <downloaded-asset> <prefix>
# Picks the platform's url/sha256 as `on_<os>` / `on_<cpu>` do, checks the downloaded file against
# the sha256, stages it under the url's basename (as Homebrew stages a file that is no archive),
# runs `install` there with `bin` = <prefix>/bin, then the `test` block. Prints what it did.
require "digest"
require "fileutils"
require "minitest"
require "pathname"
require "socket"
require "tmpdir"

FORMULA, HARNESS_OS, HARNESS_CPU, ASSET, PREFIX = ARGV
abort "usage: homebrew_harness.rb <formula.rb> <macos|linux> <arm|intel> <asset> <prefix>" unless PREFIX

# Homebrew extends Pathname with install: `bin.install "file" => "name"` moves the file into it.
class Pathname
  def install(*sources)
    mkpath
    sources.each do |source|
      pairs = source.is_a?(Hash) ? source : { source => File.basename(source) }
      pairs.each do |from, to|
        raise "install: no such file #{from.inspect}" unless from && File.exist?(from)

        FileUtils.mv(from, join(to))
        File.chmod(0o755, join(to))
      end
    end
  end
end

class Formula
  include Minitest::Assertions
  attr_accessor :assertions

  class << self
    attr_reader :stable_url, :stable_sha256, :formula_version, :test_block

    def desc(_text); end
    def homepage(_url); end
    def license(_name); end
    def livecheck(&_block); end

    def version(value)
      @formula_version = value
    end

    def url(value)
      @stable_url = value
    end

    def sha256(value)
      @stable_sha256 = value
    end

    def on_macos
      yield if HARNESS_OS == "macos"
    end

    def on_linux
      yield if HARNESS_OS == "linux"
    end

    def on_arm
      yield if HARNESS_CPU == "arm"
    end

    def on_intel
      yield if HARNESS_CPU == "intel"
    end

    def test(&block)
      @test_block = block
    end

    def inherited(subclass)
      super
      Formula.last = subclass
    end

    attr_accessor :last
  end

  def initialize(prefix)
    @prefix = Pathname(prefix)
    self.assertions = 0
  end

  def bin
    @prefix / "bin"
  end

  def version
    self.class.formula_version
  end

  def free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end

  def shell_output(cmd, result = 0)
    out = `#{cmd}`
    assert_equal result, $?.exitstatus, "#{cmd}: #{out}"
    out
  end
end

load FORMULA
klass = Formula.last
abort "#{FORMULA} defines no Formula" unless klass
url = klass.stable_url
abort "no url for #{HARNESS_OS}/#{HARNESS_CPU}" unless url
actual = Digest::SHA256.file(ASSET).hexdigest
abort "sha256 mismatch: the formula says #{klass.stable_sha256}, the download is #{actual}" if actual != klass.stable_sha256
puts "url #{url}"
puts "sha256 ok"

formula = klass.new(PREFIX)
Dir.mktmpdir("homebrew-stage-") do |stage|
  FileUtils.cp(ASSET, File.join(stage, File.basename(url)))
  Dir.chdir(stage) { formula.install }
end
puts "installed #{formula.bin.children.map { |c| c.basename.to_s }.sort.join(" ")}"
formula.instance_eval(&klass.test_block)
puts "test ok (#{formula.assertions} assertions)"
